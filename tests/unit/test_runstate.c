/* SPDX-License-Identifier: Apache-2.0 */
/* test_runstate.c — state.json: every field saved comes back (the fleet role included), atomic writes, and what a
 * damaged or foreign file loads as. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "run/base/runstate.h"
#include "util.h"
#include "test.h"

static char dir[] = "/tmp/mayfly-test-runstate-XXXXXX";

static void path_of(char *p, size_t n, const char *name) { snprintf(p, n, "%s/%s", dir, name); }

static void write_text(const char *name, const char *text) {
        char p[256];
        path_of(p, sizeof p, name);
        write_file_atomic(p, text, strlen(text), 0600);
}

static void test_roundtrip(void) {
        struct run_state a = { .started = 1700000000, .phase = PH_SHIP, .end = END_SPOT, .ended_in = PH_RUN,
                               .outcome = OUT_INTERRUPTED, .role = ROLE_LEAVES, .n = 2, .spot_time = 1700000123,
                               .exit_done = true };
        snprintf(a.job_sha, sizeof a.job_sha, "%064d", 7);
        snprintf(a.run_id, sizeof a.run_id, "sweep-20261207-abc");
        snprintf(a.instance_id, sizeof a.instance_id, "i-0123456789abcdef0");
        snprintf(a.error, sizeof a.error, "a \"quoted\" error\nover two lines");
        snprintf(a.spot_action, sizeof a.spot_action, "stop");
        a.exps[0] = (struct exp_state){ .st = EXP_DONE, .start = 1700000001, .end = 1700000050, .exit_code = 3,
                                        .signal = 0, .reason = R_EXIT, .attempts = 2, .pid = 4242,
                                        .pid_start = 123456789012ULL };
        a.exps[1] = (struct exp_state){ .st = EXP_RUNNING, .start = 1700000051, .exit_code = -1, .signal = 15,
                                        .reason = R_INTERRUPTED, .attempts = 1, .pid = 77 };
        char p[256];
        path_of(p, sizeof p, "state.json");
        T_EXPECT("saved", runstate_save(p, &a) == 0);
        struct stat st;
        T_EXPECT("state.json is 0600 (it may name paths and errors)", stat(p, &st) == 0 && (st.st_mode & 0777) == 0600);
        struct run_state b;
        memset(&b, 0xa5, sizeof b);
        T_EXPECT("loaded back", runstate_load(p, &b) == 0);
        T_EXPECT_STR("run id", b.run_id, a.run_id);
        T_EXPECT_STR("job sha", b.job_sha, a.job_sha);
        T_EXPECT_STR("instance", b.instance_id, a.instance_id);
        T_EXPECT_STR("error, quotes and newline kept", b.error, a.error);
        T_EXPECT_STR("spot action", b.spot_action, "stop");
        T_EXPECT("times", b.started == a.started && b.spot_time == a.spot_time);
        T_EXPECT("phase, end, where it ended, outcome", b.phase == PH_SHIP && b.end == END_SPOT &&
                                                               b.ended_in == PH_RUN && b.outcome == OUT_INTERRUPTED);
        T_EXPECT("the fleet role", b.role == ROLE_LEAVES);
        T_EXPECT("exit done", b.exit_done);
        T_EXPECT("experiments", b.n == 2);
        for (size_t i = 0; i < 2; i++) {
                const struct exp_state *x = &a.exps[i], *y = &b.exps[i];
                char name[64];
                snprintf(name, sizeof name, "experiment %zu, every field", i);
                T_EXPECT(name, x->st == y->st && x->start == y->start && x->end == y->end &&
                                       x->exit_code == y->exit_code && x->signal == y->signal &&
                                       x->reason == y->reason && x->attempts == y->attempts && x->pid == y->pid &&
                                       x->pid_start == y->pid_start);
        }
        /* every role survives the trip */
        for (int r = 0; r < ROLE__MAX; r++) {
                a.role = (enum fleet_role)r;
                runstate_save(p, &a);
                T_EXPECT(fleet_role_name((enum fleet_role)r), runstate_load(p, &b) == 0 && (int)b.role == r);
        }
}

static void test_damaged(void) {
        static const struct {
                const char *name, *text;
                int want;
        } cases[] = {
                { "not JSON", "{\"run_id\": ", -EBADMSG },
                { "an array", "[]", -EBADMSG },
                { "no run id", "{\"phase\": \"RUN\"}", -EBADMSG },
                { "an empty file", "", -EBADMSG },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                write_text("bad.json", cases[i].text);
                char p[256];
                path_of(p, sizeof p, "bad.json");
                struct run_state s;
                T_EXPECT(cases[i].name, runstate_load(p, &s) == cases[i].want);
        }
        /* unknown names: the defaults, never an enum out of range */
        write_text("odd.json", "{\"run_id\": \"r\", \"phase\": \"LAUNCH\", \"end\": \"meteor\", \"outcome\": \"?\", "
                               "\"fleet_role\": \"boss\", \"experiments\": [{\"status\": \"lost\", \"reason\": \"x\"}]}");
        char p[256];
        path_of(p, sizeof p, "odd.json");
        struct run_state s;
        T_EXPECT("unknown names load", runstate_load(p, &s) == 0);
        T_EXPECT("unknown names are the defaults", s.phase == PH_FETCH && s.end == END_NONE &&
                                                            s.outcome == OUT_RUNNING && s.role == ROLE_WORKS &&
                                                            s.n == 1 && s.exps[0].st == EXP_PENDING &&
                                                            s.exps[0].reason == R_NONE);
        path_of(p, sizeof p, "missing.json");
        T_EXPECT("a missing file is -ENOENT", runstate_load(p, &s) == -ENOENT);
}

int main(void) {
        if (!mkdtemp(dir)) {
                printf("FAIL mkdtemp\n");
                return 1;
        }
        test_roundtrip();
        test_damaged();
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0)
                printf("could not remove %s\n", dir);
        return t_summary();
}

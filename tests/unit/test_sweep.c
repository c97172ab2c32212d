/* SPDX-License-Identifier: Apache-2.0 */
/* test_sweep.c — the marker's environ scan (pieces of any size, entries cut anywhere), /proc/PID/status' uids,
 * the marker itself, and one real sweep: a marked process killed, an unmarked one of the same uid left alone. */
#include <signal.h>
#include <sys/wait.h>

#include "run/proc/sweep.h"
#include "util.h"
#include "test.h"

#define ENTRY "MAYFLY_RUN_MARKER=0123456789abcdef0123456789abcdef"

static bool in_pieces(const char *blk, size_t n, size_t piece) {
        struct envscan s;
        envscan_init(&s, ENTRY);
        for (size_t i = 0; i < n; i += piece)
                envscan_feed(&s, blk + i, MIN(piece, n - i));
        return envscan_found(&s);
}

static void test_scan(void) {
        static const struct {
                const char *name;
                const char *blk;
                size_t n;
                bool want;
        } cases[] = {
#define C(name, lit, want) { name, lit, sizeof lit - 1, want }
                C("first", ENTRY "\0HOME=/x\0", true),
                C("last", "HOME=/x\0" ENTRY "\0", true),
                C("last, no NUL at the end", "HOME=/x\0" ENTRY, true),
                C("alone", ENTRY "\0", true),
                C("absent", "HOME=/x\0PATH=/bin\0", false),
                C("empty", "", false),
                C("another marker", "MAYFLY_RUN_MARKER=ffffffffffffffffffffffffffffffff\0", false),
                C("a prefix of it", "MAYFLY_RUN_MARKER=0123456789abcdef\0", false),
                C("it and more", ENTRY "0\0", false),
                C("inside a value", "X=" ENTRY "\0", false),
                C("after a value that ends like its start", "XMAYFLY_RUN_MARKER=0\0" ENTRY "\0", true),
                C("its name only", "MAYFLY_RUN_MARKER\0", false),
#undef C
        };
        static const size_t pieces[] = { 1, 2, 3, 7, 64, 4096 };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                bool ok = environ_has(cases[i].blk, cases[i].n, ENTRY) == cases[i].want;
                for (size_t k = 0; k < ARRAY_SIZE(pieces); k++)
                        ok = ok && in_pieces(cases[i].blk, cases[i].n, pieces[k]) == cases[i].want;
                t_result(cases[i].name, ok, "want %d", cases[i].want);
        }
}

static void test_uids(void) {
        const char st[] = "Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t7\nPid:\t7\nPPid:\t1\n"
                          "Uid:\t1001\t1002\t1003\t1004\nGid:\t5\t5\t5\t5\n";
        uid_t u[4] = { 0 };
        T_EXPECT("status: the four uids", status_uids(st, sizeof st - 1, u) == 0 && u[0] == 1001 && u[1] == 1002 &&
                                                     u[2] == 1003 && u[3] == 1004);
        const char bad[] = "Name:\tx\nUid:\t12\n";
        T_EXPECT("status: a short Uid line", status_uids(bad, sizeof bad - 1, u) == -EINVAL);
        const char none[] = "Name:\tx\nGid:\t1\t1\t1\t1\n";
        T_EXPECT("status: no Uid line", status_uids(none, sizeof none - 1, u) == -EINVAL);
        const char cut[] = "Name:\tx\nUid:\t1\t2\t3";
        T_EXPECT("status: cut short", status_uids(cut, sizeof cut - 1, u) == -EINVAL);
}

static void test_marker(void) {
        char a[SWEEP_MARKER_LEN + 1], b[SWEEP_MARKER_LEN + 1];
        T_EXPECT("marker: made", sweep_new_marker(a) == 0 && sweep_new_marker(b) == 0);
        T_EXPECT("marker: its length", strlen(a) == SWEEP_MARKER_LEN);
        T_EXPECT("marker: hex", strspn(a, "0123456789abcdef") == SWEEP_MARKER_LEN);
        T_EXPECT("marker: a new one each time", strcmp(a, b) != 0);
}

static pid_t spawn_sleeper(const char *marker) {
        pid_t pid = fork();
        if (pid == 0) {
                char e[96];
                snprintf(e, sizeof e, "%s=%s", SWEEP_MARKER_VAR, marker);
                char *envp[] = { "A=1", marker[0] ? e : "B=2", NULL };
                char *argv[] = { "sleep", "60", NULL };
                execve("/bin/sleep", argv, envp);
                _exit(127);
        }
        return pid;
}

/* A real sweep among this uid's processes (the test's own: it is not in them, having no marker). */
static void test_live(void) {
        char m[SWEEP_MARKER_LEN + 1];
        sweep_new_marker(m);
        pid_t marked = spawn_sleeper(m), plain = spawn_sleeper("");
        usleep(200000); /* exec'd */
        size_t killed = 0;
        int left = sweep_run(NULL, getuid(), m, 5.0, &killed);
        int st = 0;
        T_EXPECT("live: none remain, one killed", left == 0 && killed == 1);
        T_EXPECT("live: the marked process got SIGKILL",
                 waitpid(marked, &st, 0) == marked && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        T_EXPECT("live: the unmarked one of the same uid lives", waitpid(plain, &st, WNOHANG) == 0);
        kill(plain, SIGKILL);
        waitpid(plain, &st, 0);
        T_EXPECT("live: a malformed marker is refused", sweep_once(getuid(), "short", NULL) == -EINVAL);
}

static void test_cgroup_is_unit(void) {
        T_EXPECT("v2 service", cgroup_is_unit("0::/system.slice/mayfly.service\n"));
        T_EXPECT("v1 name=systemd service", cgroup_is_unit("12:pids:/system.slice/mayfly.service\n"
                                                           "1:name=systemd:/system.slice/mayfly.service\n"));
        T_EXPECT("the root cgroup (a container)", !cgroup_is_unit("0::/\n"));
        T_EXPECT("a user session", !cgroup_is_unit("0::/user.slice/user-1000.slice/session-3.scope\n"));
        T_EXPECT("a service name inside the path is not the end", !cgroup_is_unit("0::/a.service/b\n"));
        T_EXPECT("v1 without name=systemd", !cgroup_is_unit("3:cpu:/system.slice/mayfly.service\n"));
        T_EXPECT("empty", !cgroup_is_unit(""));
}

int main(void) {
        test_cgroup_is_unit();
        test_scan();
        test_uids();
        test_marker();
        test_live();
        return t_summary();
}

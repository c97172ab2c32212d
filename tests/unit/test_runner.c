/* SPDX-License-Identifier: Apache-2.0 */
/* test_runner.c — the experiment's environment, entry by entry and byte for byte: the login variables from the
 * passwd entry whole (a 15-character name, a long home), each name once, the job's and mayfly's own last. */
#include "run/proc/runner.h"
#include "util.h"
#include "test.h"

static void expect_env(const char *label, char **got, const char *const *want) {
        size_t n = 0;
        for (; got && got[n]; n++) {
                char name[256];
                snprintf(name, sizeof name, "%s: entry %zu", label, n);
                if (!want[n]) {
                        t_result(name, 0, "unexpected '%s'", got[n]);
                        continue;
                }
                T_EXPECT_STR(name, got[n], want[n]);
        }
        char name[256];
        snprintf(name, sizeof name, "%s: %zu entries", label, n);
        size_t w = 0;
        while (want[w])
                w++;
        t_result(name, got && n == w, "got %zu, want %zu", n, w);
}

/* The groups an experiment does not get, and keep_groups */
static void test_dropped_groups(void) {
        char *keep[] = { "docker", NULL };
        static const char *const admin[] = { "root", "sudo", "wheel", "admin", "adm", "docker", "lxd", "disk",
                                             "systemd-journal" };
        for (size_t i = 0; i < ARRAY_SIZE(admin); i++) {
                char name[96];
                snprintf(name, sizeof name, "group %s dropped", admin[i]);
                T_EXPECT(name, run_group_dropped(admin[i], NULL));
        }
        T_EXPECT("an ordinary group kept", !run_group_dropped("video", NULL) && !run_group_dropped("users", NULL));
        T_EXPECT("a kept group kept", !run_group_dropped("docker", keep));
        T_EXPECT("keeping one keeps only it", run_group_dropped("sudo", keep));
        T_EXPECT("a prefix is not the group", !run_group_dropped("dockers", NULL) && !run_group_dropped("ad", NULL));
        T_EXPECT("no name", !run_group_dropped(NULL, NULL));
}

int main(void) {
        test_dropped_groups();
        struct run_user u = { .uid = 1234, .gid = 1234, .switch_user = true };
        snprintf(u.name, sizeof u.name, "%s", "experimentuser1"); /* 15 characters */
        snprintf(u.home, sizeof u.home, "%s", "/home/experimentuser1/with/a/rather/long/home/directory");
        snprintf(u.shell, sizeof u.shell, "%s", "/usr/local/bin/zsh");
        char *env[] = { "LANG=C.UTF-8", "AWS_SECRET_ACCESS_KEY=never", "AWS_REGION=eu-west-1", "HOME=/root",
                        "AWS_ENDPOINT_URL_S3=http://127.0.0.1:9", "NOEQUALS", "TZ=UTC", "AWS_SESSION_TOKEN=never", NULL };
        char *job[] = { "PYTHONUNBUFFERED=0", "HOME=/scratch", "WANDB_MODE=offline", "EMPTY=", NULL };
        char *mf[] = { "MAYFLY_RUN_ID=r-1", "MAYFLY_EXPERIMENT=train", NULL };

        char **e = runner_environment(&u, env, NULL, mf);
        static const char *const want1[] = {
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME=/home/experimentuser1/with/a/rather/long/home/directory",
                "USER=experimentuser1", "LOGNAME=experimentuser1", "SHELL=/usr/local/bin/zsh",
                "LANG=C.UTF-8", "AWS_REGION=eu-west-1", "AWS_ENDPOINT_URL_S3=http://127.0.0.1:9", "TZ=UTC",
                "PYTHONUNBUFFERED=1", "MAYFLY_RUN_ID=r-1", "MAYFLY_EXPERIMENT=train", NULL,
        };
        expect_env("login environment, no job variables", e, want1);
        strv_free(e);

        e = runner_environment(&u, env, job, mf);
        static const char *const want2[] = {
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/scratch",
                "USER=experimentuser1", "LOGNAME=experimentuser1", "SHELL=/usr/local/bin/zsh",
                "LANG=C.UTF-8", "AWS_REGION=eu-west-1", "AWS_ENDPOINT_URL_S3=http://127.0.0.1:9", "TZ=UTC",
                "PYTHONUNBUFFERED=0", "WANDB_MODE=offline", "EMPTY=", "MAYFLY_RUN_ID=r-1", "MAYFLY_EXPERIMENT=train", NULL,
        };
        expect_env("the job's variables replace, in place", e, want2);
        strv_free(e);

        struct run_user root = { .uid = 0, .gid = 0 };
        snprintf(root.name, sizeof root.name, "root");
        snprintf(root.home, sizeof root.home, "/root");
        snprintf(root.shell, sizeof root.shell, "/bin/bash");
        e = runner_environment(&root, NULL, NULL, NULL);
        static const char *const want3[] = {
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "USER=root",
                "LOGNAME=root", "SHELL=/bin/bash", "PYTHONUNBUFFERED=1", NULL,
        };
        expect_env("root", e, want3);
        strv_free(e);
        return t_summary();
}

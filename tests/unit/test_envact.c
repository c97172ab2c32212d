/* SPDX-License-Identifier: Apache-2.0 */
/* test_envact.c — env resolution (order, errors, bad names) and end-to-end activation through the fake conda
 * (tests/fakes/conda/make_fake_conda.sh) and fake venvs, running the argv from envact_command with a clean,
 * systemd-like environment. Run from the repo root. */
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "run/proc/envact.h"
#include "test.h"
#include "util.h"

#define MAKE_FAKE "tests/fakes/conda/make_fake_conda.sh"
#define OUT_CAP (256 * 1024)

static char T[1024];          /* the mkdtemp root */
static char A[1100];          /* T/"conda a": full fake conda root (path with a space), found through conda_exe */
static char HOME_[1100];      /* T/home: anaconda3 is a second fake root; miniconda3 is absent */
static char H_ANA[1200];      /* T/home/anaconda3 */
static char VENV_MAIN[1100];  /* T/venvs/pytorch: CPython-main style venv */
static char VENV_311[1100];   /* T/venvs/v311: Python 3.11 style venv */
static char A_EXE[1200];      /* A/bin/conda */
static bool opt_conda;        /* the host has /opt/conda (searched too) */

/* ------------------------------------------------------------------------------------------------ helpers */

struct proc {
        int status; /* raw wait status */
        pid_t pid;
        char *out, *err;
};

static void proc_free(struct proc *p) {
        free(p->out);
        free(p->err);
        *p = (struct proc){ 0 };
}

static int exit_code(const struct proc *p) { return WIFEXITED(p->status) ? WEXITSTATUS(p->status) : -1; }

/* fork/execve argv with envp, capture stdout and stderr (capped), wait. */
static int run(char *const *argv, char *const *envp, struct proc *ret) {
        int po[2], pe[2];
        if (pipe2(po, O_CLOEXEC) < 0)
                return -errno;
        if (pipe2(pe, O_CLOEXEC) < 0) {
                close(po[0]);
                close(po[1]);
                return -errno;
        }
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(po[1], 1) < 0 || dup2(pe[1], 2) < 0)
                        _exit(121);
                for (int fd = 3; fd < 1024; fd++) /* what the caller inherited (a harness's fds): not ours */
                        if (fd != po[1] && fd != pe[1])
                                close(fd);
                execve(argv[0], argv, envp);
                _exit(122);
        }
        close(po[1]);
        close(pe[1]);
        struct buf out = BUF_INIT(OUT_CAP), err = BUF_INIT(OUT_CAP);
        buf_adds(&out, "");
        buf_adds(&err, "");
        struct pollfd fds[2] = { { .fd = po[0], .events = POLLIN }, { .fd = pe[0], .events = POLLIN } };
        int open_fds = 2;
        while (open_fds > 0) {
                if (poll(fds, 2, 30000) <= 0) {
                        kill(pid, SIGKILL);
                        break;
                }
                for (int i = 0; i < 2; i++) {
                        if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        char chunk[4096];
                        ssize_t n = read(fds[i].fd, chunk, sizeof chunk);
                        if (n <= 0) {
                                close(fds[i].fd);
                                fds[i].fd = -1;
                                open_fds--;
                                continue;
                        }
                        buf_add(i ? &err : &out, chunk, (size_t)n);
                }
        }
        for (int i = 0; i < 2; i++)
                if (fds[i].fd >= 0)
                        close(fds[i].fd);
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
        *ret = (struct proc){ .status = st, .pid = pid, .out = buf_steal(&out), .err = buf_steal(&err) };
        return 0;
}

static char *const clean_env[] = { "PATH=/usr/bin:/bin", "LANG=C.UTF-8", NULL };

static bool has(const char *hay, const char *needle) { return hay && strstr(hay, needle); }

static void join3(char *out, size_t n, const char *a, const char *b, const char *c) {
        snprintf(out, n, "%s%s%s", a, b, c ? c : "");
}

static int make_fake(const char *opt1, const char *opt2, const char *opt3, const char *dir) {
        char *argv[6] = { MAKE_FAKE };
        size_t n = 1;
        if (opt1)
                argv[n++] = (char *)opt1;
        if (opt2)
                argv[n++] = (char *)opt2;
        if (opt3)
                argv[n++] = (char *)opt3;
        argv[n++] = (char *)dir;
        struct proc p;
        int r = run(argv, clean_env, &p);
        if (r < 0)
                return r;
        if (exit_code(&p) != 0) {
                fprintf(stderr, "make_fake_conda.sh %s: %s\n", dir, p.err);
                r = -EIO;
        }
        proc_free(&p);
        return r;
}

static int rm_rf(const char *dir) {
        char *argv[] = { "/bin/rm", "-rf", "--", (char *)dir, NULL };
        struct proc p;
        int r = run(argv, clean_env, &p);
        proc_free(&p);
        return r;
}

static int setup(void) {
        snprintf(T, sizeof T, "%s/mayfly-envact-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(T))
                return -errno;
        join3(A, sizeof A, T, "/conda a", NULL);
        join3(HOME_, sizeof HOME_, T, "/home", NULL);
        join3(H_ANA, sizeof H_ANA, HOME_, "/anaconda3", NULL);
        join3(VENV_MAIN, sizeof VENV_MAIN, T, "/venvs/pytorch", NULL);
        join3(VENV_311, sizeof VENV_311, T, "/venvs/v311", NULL);
        join3(A_EXE, sizeof A_EXE, A, "/bin/conda", NULL);
        opt_conda = access("/opt/conda/etc/profile.d/conda.sh", F_OK) == 0;
        int r;
        if ((r = make_fake(NULL, NULL, NULL, A)) < 0 || (r = make_fake(NULL, NULL, NULL, H_ANA)) < 0 ||
            (r = make_fake("--venv", "--style", "main", VENV_MAIN)) < 0 ||
            (r = make_fake("--venv", "--style", "3.11", VENV_311)) < 0)
                return r;
        /* an env only the second base has */
        char d[1400];
        join3(d, sizeof d, H_ANA, "/envs/mf_onlyhome", NULL);
        return mkdir(d, 0755) < 0 ? -errno : 0;
}

/* --------------------------------------------------------------------------------------------- resolution */

static void test_resolve(void) {
        char exp_sh_a[1400], exp_sh_h[1400], pfx[1400], nometa[1400], venv_act[1400], missing_err[4096],
                nohome_err[1024], relexe[64];
        join3(exp_sh_a, sizeof exp_sh_a, A, "/etc/profile.d/conda.sh", NULL);
        join3(exp_sh_h, sizeof exp_sh_h, H_ANA, "/etc/profile.d/conda.sh", NULL);
        join3(pfx, sizeof pfx, A, "/envs/pytorch", NULL);
        join3(nometa, sizeof nometa, A, "/envs/nometa", NULL);
        join3(venv_act, sizeof venv_act, VENV_MAIN, "/bin/activate", NULL);
        snprintf(relexe, sizeof relexe, "conda/bin/conda");
        snprintf(missing_err, sizeof missing_err,
                 "conda env 'nope' not found; searched %s/envs/nope, %s%s/envs/nope (no conda at %s%s/miniconda3)", A,
                 opt_conda ? "/opt/conda/envs/nope, " : "", H_ANA, opt_conda ? "" : "/opt/conda, ", HOME_);
        snprintf(nohome_err, sizeof nohome_err, "conda env 'pytorch' not found; %s",
                 opt_conda ? "searched /opt/conda/envs/pytorch" : "no conda at /opt/conda");
        char slash_home[1200], slash_exe[1300];
        join3(slash_home, sizeof slash_home, HOME_, "//", NULL);
        join3(slash_exe, sizeof slash_exe, H_ANA, "/bin/conda", NULL);
        char h_err[2048];
        snprintf(h_err, sizeof h_err,
                 "conda env 'nope' not found; searched %s/envs/nope%s (no conda at %s%s/miniconda3)",
                 H_ANA, opt_conda ? ", /opt/conda/envs/nope" : "", opt_conda ? "" : "/opt/conda, ", HOME_);

        struct {
                const char *name;
                enum env_kind kind;
                const char *value, *conda_exe, *home;
                int want;
                const char *conda_sh, *target, *activate, *err; /* NULL: not checked */
        } t[] = {
                { "conda name in conda_exe base", ENV_CONDA, "pytorch", A_EXE, HOME_, 0, exp_sh_a, "pytorch", NULL,
                  NULL },
                { "conda base is the first base", ENV_CONDA, "base", A_EXE, HOME_, 0, exp_sh_a, "base", NULL, NULL },
                { "conda root is base", ENV_CONDA, "root", A_EXE, HOME_, 0, exp_sh_a, "root", NULL, NULL },
                { "conda name only in a later base", ENV_CONDA, "mf_onlyhome", A_EXE, HOME_, 0, exp_sh_h, "mf_onlyhome",
                  NULL, NULL },
                { "conda name found via home without conda_exe", ENV_CONDA, "mf_onlyhome", NULL, HOME_, 0, exp_sh_h,
                  "mf_onlyhome", NULL, NULL },
                { "conda name without conda-meta is fine", ENV_CONDA, "nometa", A_EXE, NULL, 0, exp_sh_a, "nometa",
                  NULL, NULL },
                { "conda base via home anaconda3", ENV_CONDA, "base", NULL, HOME_, 0,
                  opt_conda ? "/opt/conda/etc/profile.d/conda.sh" : exp_sh_h, "base", NULL, NULL },
                { "conda missing lists every place", ENV_CONDA, "nope", A_EXE, HOME_, -ENOENT, NULL, NULL, NULL,
                  missing_err },
                { "conda missing, trailing slashes and duplicate base", ENV_CONDA, "nope", slash_exe, slash_home,
                  -ENOENT, NULL, NULL, NULL, h_err },
                { "conda missing without home", ENV_CONDA, "pytorch", NULL, NULL, opt_conda ? 0 : -ENOENT, NULL, NULL,
                  NULL, opt_conda ? NULL : nohome_err },
                { "relative conda_exe is ignored", ENV_CONDA, "pytorch", relexe, NULL, opt_conda ? 0 : -ENOENT, NULL,
                  NULL, NULL, opt_conda ? NULL : nohome_err },
                { "conda name with slash", ENV_CONDA, "envs/pytorch", A_EXE, HOME_, -EINVAL, NULL, NULL, NULL, NULL },
                { "conda name dotdot", ENV_CONDA, "..", A_EXE, HOME_, -EINVAL, NULL, NULL, NULL, NULL },
                { "conda name hidden", ENV_CONDA, ".hidden", A_EXE, HOME_, -EINVAL, NULL, NULL, NULL, NULL },
                { "conda name option", ENV_CONDA, "-n", A_EXE, HOME_, -EINVAL, NULL, NULL, NULL, NULL },
                { "conda name empty", ENV_CONDA, "", A_EXE, HOME_, -EINVAL, NULL, NULL, NULL, NULL },
                { "conda name newline", ENV_CONDA, "py\ntorch", A_EXE, HOME_, -EINVAL, NULL, NULL, NULL, NULL },
                { "conda name NULL", ENV_CONDA, NULL, A_EXE, HOME_, -EINVAL, NULL, NULL, NULL, NULL },
                { "conda prefix", ENV_CONDA_PREFIX, pfx, NULL, HOME_, 0,
                  opt_conda ? "/opt/conda/etc/profile.d/conda.sh" : exp_sh_h, pfx, NULL, NULL },
                { "conda prefix via conda_exe", ENV_CONDA_PREFIX, pfx, A_EXE, NULL, 0, exp_sh_a, pfx, NULL, NULL },
                { "conda prefix without conda-meta", ENV_CONDA_PREFIX, nometa, A_EXE, NULL, -ENOENT, NULL, NULL, NULL,
                  NULL },
                { "conda prefix relative", ENV_CONDA_PREFIX, "envs/pytorch", A_EXE, NULL, -EINVAL, NULL, NULL, NULL,
                  NULL },
                { "venv present", ENV_VENV, VENV_MAIN, NULL, NULL, 0, NULL, VENV_MAIN, venv_act, NULL },
                { "venv absent", ENV_VENV, T, NULL, NULL, -ENOENT, NULL, NULL, NULL, NULL },
                { "venv relative", ENV_VENV, "venvs/pytorch", NULL, NULL, -EINVAL, NULL, NULL, NULL, NULL },
                { "none", ENV_NONE, NULL, NULL, NULL, 0, "", "", "", NULL },
        };
        for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
                struct env_spec spec = { t[i].kind, t[i].value };
                struct envact_search s = { t[i].conda_exe, t[i].home };
                struct envact_plan plan;
                memset(&plan, 0x5a, sizeof plan);
                char err[4096] = "unset";
                int r = envact_resolve(&spec, &s, &plan, err, sizeof err);
                bool ok = r == t[i].want;
                if (ok && r == 0) {
                        ok = plan.kind == t[i].kind && (!t[i].conda_sh || strcmp(plan.conda_sh, t[i].conda_sh) == 0) &&
                             (!t[i].target || strcmp(plan.target, t[i].target) == 0) &&
                             (!t[i].activate || strcmp(plan.activate, t[i].activate) == 0) && err[0] == 0;
                } else if (ok) {
                        /* failures leave ret untouched and say something, on one line */
                        ok = plan.conda_sh[0] == 0x5a && plan.target[100] == 0x5a && err[0] && !strchr(err, '\n') &&
                             (!t[i].err || strcmp(err, t[i].err) == 0);
                }
                char name[256];
                snprintf(name, sizeof name, "resolve %s", t[i].name);
                t_result(name, ok, "r=%d want %d err=[%s] want err=[%s] conda_sh=[%.200s] target=[%.200s]", r,
                         t[i].want, err, t[i].err ? t[i].err : "", r == 0 ? plan.conda_sh : "",
                         r == 0 ? plan.target : "");
        }

        /* the error names the missing env's files */
        struct env_spec v = { ENV_VENV, T };
        struct envact_plan plan;
        char err[4096];
        char want[1400];
        join3(want, sizeof want, T, "/bin/activate", NULL);
        envact_resolve(&v, NULL, &plan, err, sizeof err);
        T_EXPECT("resolve venv absent names bin/activate", has(err, want) && has(err, "venv"));
        struct env_spec pm = { ENV_CONDA_PREFIX, nometa };
        struct envact_search s = { A_EXE, NULL };
        envact_resolve(&pm, &s, &plan, err, sizeof err);
        join3(want, sizeof want, nometa, "/conda-meta", NULL);
        T_EXPECT("resolve prefix absent names conda-meta", has(err, want));
        /* a short err buffer is truncated, terminated */
        struct env_spec m = { ENV_CONDA, "nope" };
        struct envact_search sh = { A_EXE, HOME_ };
        char small[16];
        int r = envact_resolve(&m, &sh, &plan, small, sizeof small);
        T_EXPECT("resolve short err buffer", r == -ENOENT && strlen(small) == sizeof small - 1);
        T_EXPECT("resolve NULL err", envact_resolve(&m, &sh, &plan, NULL, 0) == -ENOENT);
}

/* ------------------------------------------------------------------------------------------- argv shape */

static size_t argv_len(char **a) {
        size_t n = 0;
        while (a && a[n])
                n++;
        return n;
}

static void test_command_shape(void) {
        struct envact_plan p = { .kind = ENV_CONDA };
        snprintf(p.conda_sh, sizeof p.conda_sh, "/opt/conda/etc/profile.d/conda.sh");
        snprintf(p.target, sizeof p.target, "pytorch");
        char *cmd[] = { "python", "train.py", "--lr", "0.1", NULL };
        char **a = NULL;
        int r = envact_command(&p, cmd, false, &a);
        T_EXPECT("command conda argv", r == 0 && argv_len(a) == 13 && strcmp(a[0], "/bin/bash") == 0 &&
                                               strcmp(a[1], "--noprofile") == 0 && strcmp(a[2], "--norc") == 0 &&
                                               strcmp(a[3], "-c") == 0 && strcmp(a[5], "mayfly-env") == 0 &&
                                               strcmp(a[6], p.conda_sh) == 0 && strcmp(a[7], "pytorch") == 0 &&
                                               strcmp(a[8], "--") == 0 && strcmp(a[9], "python") == 0 &&
                                               strcmp(a[12], "0.1") == 0);
        T_EXPECT("command script has no input", a && !has(a[4], "pytorch") && !has(a[4], "conda.sh") &&
                                                        has(a[4], "exec \"${__mayfly_cmd[@]}\""));
        envact_free_argv(a);
        a = NULL;

        char *scmd[] = { "python train.py | tee log", NULL };
        r = envact_command(&p, scmd, true, &a);
        T_EXPECT("command conda shell string", r == 0 && argv_len(a) == 12 && strcmp(a[9], "/bin/bash") == 0 &&
                                                       strcmp(a[10], "-c") == 0 && strcmp(a[11], scmd[0]) == 0);
        envact_free_argv(a);
        a = NULL;

        struct envact_plan v = { .kind = ENV_VENV };
        snprintf(v.target, sizeof v.target, "/opt/pytorch");
        snprintf(v.activate, sizeof v.activate, "/opt/pytorch/bin/activate");
        r = envact_command(&v, cmd, false, &a);
        T_EXPECT("command venv argv", r == 0 && argv_len(a) == 13 && strcmp(a[6], v.activate) == 0 &&
                                              strcmp(a[7], "/opt/pytorch") == 0 && strcmp(a[9], "python") == 0);
        envact_free_argv(a);
        a = NULL;

        struct envact_plan none = { .kind = ENV_NONE };
        r = envact_command(&none, cmd, false, &a);
        T_EXPECT("command none argv as is", r == 0 && argv_len(a) == 4 && strcmp(a[0], "python") == 0 &&
                                                    strcmp(a[3], "0.1") == 0 && a[0] != cmd[0]);
        envact_free_argv(a);
        a = NULL;
        r = envact_command(&none, scmd, true, &a);
        T_EXPECT("command none shell", r == 0 && argv_len(a) == 3 && strcmp(a[0], "/bin/bash") == 0 &&
                                               strcmp(a[1], "-c") == 0 && strcmp(a[2], scmd[0]) == 0);
        envact_free_argv(a);
        a = (char **)0x1;

        char *empty[] = { NULL };
        T_EXPECT("command empty argv", envact_command(&p, empty, false, &a) == -EINVAL && a == (char **)0x1);
        T_EXPECT("command shell takes one string", envact_command(&p, cmd, true, &a) == -EINVAL);
        struct envact_plan bad = { .kind = ENV_CONDA };
        T_EXPECT("command plan without conda.sh", envact_command(&bad, cmd, false, &a) == -EINVAL);
        envact_free_argv(NULL);
}

/* ------------------------------------------------------------------------------------------- end to end */

/* Resolve spec, build the argv, run it in env (default: systemd-like PATH only). */
static int run_in(enum env_kind kind, const char *value, char *const *cmd, bool shell, char *const *env,
                  struct proc *ret) {
        struct env_spec spec = { kind, value };
        struct envact_search s = { A_EXE, HOME_ };
        struct envact_plan plan;
        char err[4096];
        int r = envact_resolve(&spec, &s, &plan, err, sizeof err);
        if (r < 0) {
                printf("# resolve %s: %s\n", value ? value : "", err);
                return r;
        }
        _cleanup_(envact_free_argvp) char **argv = NULL;
        r = envact_command(&plan, cmd, shell, &argv);
        if (r < 0)
                return r;
        return run(argv, env ? env : clean_env, ret);
}

static void test_e2e_conda(void) {
        char want[4096];
        struct proc p = { 0 };
        char *cmd[] = { "/bin/sh", "-c",
                        "echo \"$CONDA_DEFAULT_ENV $MAYFLY_FAKE_HOOK\"; command -v python; echo \"$LD_LIBRARY_PATH\"; "
                        "echo \"$CONDA_SHLVL|$CONDA_PREFIX|$(printenv PS1 || echo unset)|$HOME\"; echo \"$PATH\"; "
                        "echo \"pid $$\"",
                        NULL };
        int r = run_in(ENV_CONDA, "pytorch", cmd, false, NULL, &p);
        struct passwd *pw = getpwuid(getuid());
        snprintf(want, sizeof want,
                 "pytorch ran\n%s/envs/pytorch/bin/python\n"
                 "/usr/local/cuda-12.4/lib64:/usr/local/cuda-12.4/extras/CUPTI/lib64\n"
                 "1|%s/envs/pytorch|unset|%s\n%s/envs/pytorch/bin:%s/condabin:/usr/bin:/bin\npid %d\n",
                 A, A, pw ? pw->pw_dir : "?", A, A, (int)p.pid);
        T_EXPECT("e2e conda exit 0", r == 0 && exit_code(&p) == 0);
        T_EXPECT_STR("e2e conda hook ran, python from env, PATH, HOME filled, PS1 unset, same pid", p.out, want);
        proc_free(&p);

        /* DLAMI hooks: unset LD_LIBRARY_PATH_WITHOUT_CUDA with nounset imported through SHELLOPTS, a hook that
         * echoes (stdout stays the command's), hooks sorted by byte order, .bat/README ignored, env_vars. */
        char *env_u[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin", "SHELLOPTS=nounset",
                          "HOME=/home/mf-test", NULL };
        char *cmd2[] = { "/bin/sh", "-c",
                         "echo \"$MAYFLY_HOOK_ORDER|$MAYFLY_FAKE_KERAS|$MF_DUP|$MF_PKG_VAR|${MF_GONE-gone}\"", NULL };
        r = run_in(ENV_CONDA, "pytorch_p310", cmd2, false, env_u, &p);
        T_EXPECT("e2e dlami hooks under SHELLOPTS=nounset exit 0", r == 0 && exit_code(&p) == 0);
        T_EXPECT_STR("e2e dlami hook order and env vars", p.out,
                     "00_activate.sh 10_x.sh 99_marker.sh Z_upper.sh a_lower.sh|/home/mf-test/.keras|from-state|"
                     "from-pkg|gone\n");
        T_EXPECT("e2e hook output goes to stderr", has(p.err, "mayfly-fake-hook: activated pytorch_p310"));
        proc_free(&p);

        /* shell string */
        char *scmd[] = { "for v in \"$CONDA_DEFAULT_ENV\" \"$MAYFLY_FAKE_HOOK\"; do printf '<%s>' \"$v\"; done; "
                         "python --version; exit 7",
                         NULL };
        r = run_in(ENV_CONDA, "pytorch", scmd, true, NULL, &p);
        T_EXPECT_STR("e2e shell string runs in env", p.out, "<pytorch><ran>Python 3.11.9\n");
        T_EXPECT("e2e shell string exit status passes through", r == 0 && exit_code(&p) == 7);
        proc_free(&p);

        /* no injection: arguments reach the command verbatim */
        char pwned[1200], arg[1400];
        join3(pwned, sizeof pwned, T, "/pwned", NULL);
        snprintf(arg, sizeof arg, "a  b 'c' \"d\" $(touch %s) `touch %s` ; touch %s \\ $HOME * \n end", pwned, pwned,
                 pwned);
        char *icmd[] = { "/usr/bin/printf", "[%s]\\n", arg, "", "--", NULL };
        r = run_in(ENV_CONDA, "pytorch", icmd, false, NULL, &p);
        snprintf(want, sizeof want, "[%s]\n[]\n[--]\n", arg);
        T_EXPECT_STR("e2e argument passed verbatim", p.out, want);
        T_EXPECT("e2e no command substitution happened", access(pwned, F_OK) < 0);
        proc_free(&p);

        /* the prefix form: CONDA_DEFAULT_ENV is the basename (parent is envs) */
        char pfx[1400];
        join3(pfx, sizeof pfx, A, "/envs/pytorch", NULL);
        char *c3[] = { "/bin/sh", "-c", "echo \"$CONDA_DEFAULT_ENV $MAYFLY_FAKE_HOOK $CONDA_PREFIX\"", NULL };
        r = run_in(ENV_CONDA_PREFIX, pfx, c3, false, NULL, &p);
        snprintf(want, sizeof want, "pytorch ran %s\n", pfx);
        T_EXPECT_STR("e2e conda prefix", p.out, want);
        proc_free(&p);

        /* base */
        r = run_in(ENV_CONDA, "base", c3, false, NULL, &p);
        snprintf(want, sizeof want, "base  %s\n", A);
        T_EXPECT_STR("e2e conda base", p.out, want);
        proc_free(&p);

        /* command not found: bash's 127, and it is not an activation failure */
        char *nf[] = { "/nonexistent/mayfly-cmd", NULL };
        r = run_in(ENV_CONDA, "pytorch", nf, false, NULL, &p);
        T_EXPECT("e2e missing command exits 127", r == 0 && exit_code(&p) == 127 && !has(p.err, "cannot activate"));
        proc_free(&p);

        /* the command's stdin is the caller's (here /dev/null), not eaten by activation; fds: only 0 1 2 */
        char *fdcmd[] = { "/bin/sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '", NULL };
        r = run_in(ENV_CONDA, "pytorch", fdcmd, false, NULL, &p);
        T_EXPECT_STR("e2e only stdio inherited", p.out, "0 1 2 3 ");
        proc_free(&p);
}

static void test_e2e_fail(void) {
        struct proc p = { 0 };
        char *cmd[] = { "/bin/echo", "should not run", NULL };

        /* the env vanished after resolve: conda's error, then ours naming the env, 126 */
        struct envact_plan plan = { .kind = ENV_CONDA };
        snprintf(plan.conda_sh, sizeof plan.conda_sh, "%s/etc/profile.d/conda.sh", A);
        snprintf(plan.target, sizeof plan.target, "ghost_env");
        _cleanup_(envact_free_argvp) char **argv = NULL;
        int r = envact_command(&plan, cmd, false, &argv);
        if (r == 0)
                r = run(argv, clean_env, &p);
        T_EXPECT("e2e conda activation failure exits 126", r == 0 && exit_code(&p) == 126 && p.out[0] == 0);
        T_EXPECT("e2e conda failure names the env",
                 has(p.err, "mayfly-env: cannot activate conda env 'ghost_env'") &&
                         has(p.err, "EnvironmentNameNotFound: Could not find conda environment: ghost_env"));
        proc_free(&p);
        envact_free_argv(argv);
        argv = NULL;

        /* conda.sh missing */
        snprintf(plan.conda_sh, sizeof plan.conda_sh, "%s/nowhere/conda.sh", T);
        snprintf(plan.target, sizeof plan.target, "pytorch");
        r = envact_command(&plan, cmd, false, &argv);
        if (r == 0)
                r = run(argv, clean_env, &p);
        T_EXPECT("e2e missing conda.sh exits 126", r == 0 && exit_code(&p) == 126 &&
                                                           has(p.err, "cannot activate conda env 'pytorch'"));
        proc_free(&p);
        envact_free_argv(argv);
        argv = NULL;

        /* a hook that exits the shell */
        char hookdir[1400], hook[1500];
        join3(hookdir, sizeof hookdir, A, "/envs/exiting", NULL);
        mkdir(hookdir, 0755);
        join3(hookdir, sizeof hookdir, A, "/envs/exiting/etc", NULL);
        mkdir(hookdir, 0755);
        join3(hookdir, sizeof hookdir, A, "/envs/exiting/etc/conda", NULL);
        mkdir(hookdir, 0755);
        join3(hookdir, sizeof hookdir, A, "/envs/exiting/etc/conda/activate.d", NULL);
        mkdir(hookdir, 0755);
        join3(hook, sizeof hook, hookdir, "/00_exit.sh", NULL);
        FILE *f = fopen(hook, "we");
        if (f) {
                fputs("echo 'hook giving up' >&2\nexit 3\n", f);
                fclose(f);
        }
        r = run_in(ENV_CONDA, "exiting", cmd, false, NULL, &p);
        T_EXPECT("e2e hook that exits gives 126", r == 0 && exit_code(&p) == 126 && p.out[0] == 0 &&
                                                          has(p.err, "cannot activate conda env 'exiting'") &&
                                                          has(p.err, "hook giving up"));
        proc_free(&p);

        /* venv whose activate vanished */
        struct envact_plan v = { .kind = ENV_VENV };
        snprintf(v.target, sizeof v.target, "%s/venvs/gone", T);
        snprintf(v.activate, sizeof v.activate, "%s/venvs/gone/bin/activate", T);
        r = envact_command(&v, cmd, false, &argv);
        if (r == 0)
                r = run(argv, clean_env, &p);
        snprintf(hook, sizeof hook, "cannot activate venv '%s/venvs/gone'", T);
        T_EXPECT("e2e venv activation failure exits 126", r == 0 && exit_code(&p) == 126 && has(p.err, hook));
        proc_free(&p);
}

static void test_e2e_venv(void) {
        char want[4096];
        struct proc p = { 0 };
        char *cmd[] = { "/bin/sh", "-c",
                        "echo \"$VIRTUAL_ENV|$VIRTUAL_ENV_PROMPT|$(printenv PS1 || echo unset)|${CONDA_PREFIX-none}\"; "
                        "command -v python; "
                        "python -c 'import sys; print(sys.prefix)'",
                        NULL };
        int r = run_in(ENV_VENV, VENV_MAIN, cmd, false, NULL, &p);
        snprintf(want, sizeof want, "%s|pytorch|unset|none\n%s/bin/python\n%s\n", VENV_MAIN, VENV_MAIN, VENV_MAIN);
        T_EXPECT("e2e venv main exit 0", r == 0 && exit_code(&p) == 0);
        T_EXPECT_STR("e2e venv main", p.out, want);
        proc_free(&p);

        /* 3.11 exports PS1: the command still sees none, even when the caller had one (bash -c drops it) */
        r = run_in(ENV_VENV, VENV_311, cmd, false, NULL, &p);
        snprintf(want, sizeof want, "%s|(v311) |unset|none\n%s/bin/python\n%s\n", VENV_311, VENV_311, VENV_311);
        T_EXPECT_STR("e2e venv 3.11 exported PS1 dropped", p.out, want);
        proc_free(&p);
        char *env_ps1[] = { "PATH=/usr/bin:/bin", "PS1=$ ", "HOME=/nonexistent", NULL };
        r = run_in(ENV_VENV, VENV_311, cmd, false, env_ps1, &p);
        snprintf(want, sizeof want, "%s|(v311) |unset|none\n%s/bin/python\n%s\n", VENV_311, VENV_311, VENV_311);
        T_EXPECT_STR("e2e venv 3.11 caller PS1 not passed on", p.out, want);
        proc_free(&p);

        char *scmd[] = { "python --version && echo \"$VIRTUAL_ENV\"", NULL };
        r = run_in(ENV_VENV, VENV_MAIN, scmd, true, NULL, &p);
        snprintf(want, sizeof want, "Python 3.11.2\n%s\n", VENV_MAIN);
        T_EXPECT_STR("e2e venv shell string", p.out, want);
        proc_free(&p);
}

static void test_e2e_none(void) {
        struct proc p = { 0 };
        char *cmd[] = { "/bin/sh", "-c", "echo \"${CONDA_PREFIX-none} $0\"", "x y", NULL };
        int r = run_in(ENV_NONE, NULL, cmd, false, NULL, &p);
        T_EXPECT_STR("e2e none argv", r == 0 ? p.out : NULL, "none x y\n");
        proc_free(&p);
        char *scmd[] = { "echo \"$BASH_VERSION\" | cut -c1", NULL };
        r = run_in(ENV_NONE, NULL, scmd, true, NULL, &p);
        T_EXPECT("e2e none shell string is bash", r == 0 && exit_code(&p) == 0 && p.out[0] >= '1' && p.out[0] <= '9');
        proc_free(&p);
}

int main(int argc, char **argv) {
        (void)argc;
        (void)argv;
        signal(SIGPIPE, SIG_IGN);
        int r = setup();
        t_result("setup fake conda and venvs", r == 0, "setup: %s", strerror(-r));
        if (r == 0) {
                test_resolve();
                test_command_shape();
                test_e2e_conda();
                test_e2e_fail();
                test_e2e_venv();
                test_e2e_none();
        }
        if (T[0] && !getenv("MAYFLY_KEEP_TMP"))
                rm_rf(T);
        return t_summary();
}

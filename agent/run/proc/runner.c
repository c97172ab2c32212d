/* SPDX-License-Identifier: Apache-2.0 */
/* runner.c — fork/exec of experiments as the run user, in their own process group. */
#include "run/proc/runner.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <linux/close_range.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "child.h"
#include "util.h"

/* The passwd entry, whole: a name, home or shell that does not fit is an error, never a cut string. */
static int fill_user(const struct passwd *pw, struct run_user *u) {
        const char *home = pw->pw_dir && *pw->pw_dir ? pw->pw_dir : "/";
        const char *shell = pw->pw_shell && *pw->pw_shell ? pw->pw_shell : "/bin/sh";
        if (strlen(pw->pw_name) >= sizeof u->name || strlen(home) >= sizeof u->home || strlen(shell) >= sizeof u->shell)
                return -ENAMETOOLONG;
        snprintf(u->name, sizeof u->name, "%s", pw->pw_name);
        snprintf(u->home, sizeof u->home, "%s", home);
        snprintf(u->shell, sizeof u->shell, "%s", shell);
        u->uid = pw->pw_uid;
        u->gid = pw->pw_gid;
        return 0;
}

/* Groups that are a way to root (or to every user's files): an AMI's administrator is in them, an experiment is not,
 * unless the job keeps them by name (keep_groups). */
static const char *const admin_groups[] = { "root", "sudo", "wheel", "admin", "adm", "docker", "lxd", "disk",
                                             "systemd-journal", NULL };

bool run_group_dropped(const char *group, char *const *keep) {
        if (!group)
                return false;
        for (char *const *k = keep; k && *k; k++)
                if (!strcmp(*k, group))
                        return false;
        for (const char *const *a = admin_groups; *a; a++)
                if (!strcmp(*a, group))
                        return true;
        return false;
}

/* Supplementary groups, looked up here rather than with initgroups() in the child: NSS is not async-signal-safe,
 * and the child of a multithreaded process may only make async-signal-safe calls. The administrators' groups go
 * (run_group_dropped); the primary group stays. */
static int resolve_groups(struct run_user *u, char *const *keep) {
        gid_t all[RUN_USER_MAX_GROUPS];
        int n = RUN_USER_MAX_GROUPS;
        if (getgrouplist(u->name, u->gid, all, &n) < 0)
                return -E2BIG;
        u->ngroups = 0;
        _cleanup_free_ char *buf = malloc(1 << 20); /* an LDAP/SSSD group lists many members */
        for (int i = 0; i < n; i++) {
                struct group gr, *res = NULL;
                if (all[i] != u->gid &&
                    (!buf || getgrgid_r(all[i], &gr, buf, 1 << 20, &res) != 0 || !res ||
                     run_group_dropped(res->gr_name, keep))) {
                        u->dropped++; /* an administrators' group, or one whose name cannot be read: not given */
                        continue;
                }
                u->groups[u->ngroups++] = all[i];
        }
        return 0;
}

static int lookup(const char *name, struct run_user *u) {
        struct passwd pw, *res = NULL;
        char buf[16384];
        if (getpwnam_r(name, &pw, buf, sizeof buf, &res) != 0 || !res)
                return -ENOENT;
        return fill_user(res, u);
}

static int create_mayfly_user(char *err, size_t errlen) {
        char *const argv[] = { "useradd", "--system", "--create-home", "--home-dir", "/var/lib/mayfly-home",
                               "--shell", "/bin/bash", "--comment", "mayfly experiments", "mayfly", NULL };
        pid_t pid;
        int st = 0;
        int r = child_spawn(&(struct child_spec){ .path = "useradd", .argv = argv, .search = true, .out_fd = -1,
                                                  .err_fd = -1 }, &pid);
        if (r == 0)
                r = child_wait(pid, &st);
        if (r < 0) {
                snprintf(err, errlen, "cannot create the 'mayfly' user: useradd: %s", strerror(-r));
                return r;
        }
        if (!WIFEXITED(st) || (WEXITSTATUS(st) != 0 && WEXITSTATUS(st) != 9 /* exists */)) {
                snprintf(err, errlen, "cannot create the 'mayfly' user: useradd failed");
                return -EIO;
        }
        return 0;
}

int run_user_resolve(const char *wanted, char *const *keep_groups, struct run_user *ret, char *err, size_t errlen) {
        struct run_user u = { 0 };
        if (geteuid() != 0) {
                struct passwd pw, *res = NULL;
                char buf[16384];
                if (getpwuid_r(geteuid(), &pw, buf, sizeof buf, &res) != 0 || !res) {
                        snprintf(err, errlen, "cannot look up the current user");
                        return -ENOENT;
                }
                if (fill_user(res, &u) < 0) {
                        snprintf(err, errlen, "the current user's name, home or shell in the passwd entry is too long");
                        return -ENAMETOOLONG;
                }
                if (wanted && strcmp(wanted, u.name) != 0) {
                        snprintf(err, errlen, "user '%s' requested but the agent is not root (running as '%s')",
                                 wanted, u.name);
                        return -EPERM;
                }
                *ret = u;
                return 0;
        }
        if (wanted) {
                int r = lookup(wanted, &u);
                if (r == -ENAMETOOLONG) {
                        snprintf(err, errlen, "user '%s': its name, home or shell in the passwd entry is too long", wanted);
                        return r;
                }
                if (r < 0) {
                        snprintf(err, errlen, "user '%s' does not exist", wanted);
                        return -ENOENT;
                }
        } else if (lookup("mayfly", &u) < 0) {
                /* never the AMI's administrator (ec2-user, ubuntu: passwordless sudo, docker): a user of its own */
                int r = create_mayfly_user(err, errlen);
                if (r < 0)
                        return r;
                if (lookup("mayfly", &u) < 0) {
                        snprintf(err, errlen, "the 'mayfly' user was created but cannot be found");
                        return -ENOENT;
                }
        }
        if (resolve_groups(&u, wanted ? keep_groups : NULL) < 0) {
                snprintf(err, errlen, "user '%s' is in more than %d groups", u.name, RUN_USER_MAX_GROUPS);
                return -E2BIG;
        }
        u.switch_user = true;
        *ret = u;
        return 0;
}

void strv_free(char **v) {
        for (char **p = v; p && *p; p++)
                free(*p);
        free(v);
}

/* A NAME=VALUE list where each name appears once: setting a name again replaces its entry in place. */
struct envb {
        char **v;
        size_t n, cap;
};

static int envb_set(struct envb *b, const char *name, size_t nl, const char *value) {
        size_t vl = strlen(value);
        char *s = malloc(nl + 1 + vl + 1);
        if (!s)
                return -ENOMEM;
        memcpy(s, name, nl);
        s[nl] = '=';
        memcpy(s + nl + 1, value, vl + 1);
        for (size_t i = 0; i < b->n; i++)
                if (!strncmp(b->v[i], name, nl) && b->v[i][nl] == '=') {
                        free(b->v[i]);
                        b->v[i] = s;
                        return 0;
                }
        if (b->n + 2 > b->cap) {
                size_t nc = b->cap ? b->cap * 2 : 32;
                char **p = realloc(b->v, nc * sizeof *p);
                if (!p) {
                        free(s);
                        return -ENOMEM;
                }
                b->v = p;
                b->cap = nc;
        }
        b->v[b->n++] = s;
        b->v[b->n] = NULL;
        return 0;
}

/* "NAME=VALUE"; an entry without '=' is not an environment variable and is dropped. */
static int envb_put(struct envb *b, const char *kv) {
        const char *eq = strchr(kv, '=');
        if (!eq || eq == kv)
                return 0;
        return envb_set(b, kv, (size_t)(eq - kv), eq + 1);
}

static int envb_setc(struct envb *b, const char *name, const char *value) {
        return envb_set(b, name, strlen(name), value);
}

/* Variables a training script expects from a login-like environment; AWS configuration but never keys. */
static bool passthrough(const char *kv) {
        static const char *const keep[] = { "LANG=", "LC_ALL=", "TZ=", "AWS_REGION=", "AWS_DEFAULT_REGION=",
                                            "AWS_ENDPOINT_URL", "AWS_CA_BUNDLE=", "AWS_EC2_METADATA_SERVICE_ENDPOINT=",
                                            "AWS_EC2_METADATA_DISABLED=", "AWS_MAX_ATTEMPTS=", "CONDA_EXE=",
                                            "CUDA_VISIBLE_DEVICES=", "NVIDIA_VISIBLE_DEVICES=" };
        for (size_t i = 0; i < ARRAY_SIZE(keep); i++)
                if (str_has_prefix(kv, keep[i]))
                        return true;
        return false;
}

char **runner_environment(const struct run_user *u, char *const *env, char *const *job_env, char *const *mayfly_env) {
        struct envb b = { 0 };
        int r = envb_setc(&b, "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        if (r == 0)
                r = envb_setc(&b, "HOME", u->home);
        if (r == 0)
                r = envb_setc(&b, "USER", u->name);
        if (r == 0)
                r = envb_setc(&b, "LOGNAME", u->name);
        if (r == 0)
                r = envb_setc(&b, "SHELL", u->shell);
        for (char *const *e = env; r == 0 && e && *e; e++)
                if (passthrough(*e))
                        r = envb_put(&b, *e);
        /* Python block-buffers a stdout that is not a terminal: without this print() reaches the live logs
         * minutes late (SageMaker sets it too); the job's environment may set it to something else */
        if (r == 0)
                r = envb_setc(&b, "PYTHONUNBUFFERED", "1");
        for (char *const *e = job_env; r == 0 && e && *e; e++)
                r = envb_put(&b, *e);
        for (char *const *e = mayfly_env; r == 0 && e && *e; e++)
                r = envb_put(&b, *e);
        if (r == 0 && !b.v)
                r = -ENOMEM;
        if (r < 0) {
                strv_free(b.v);
                return NULL;
        }
        return b.v;
}

enum spawn_step { STEP_SETSID, STEP_STDIO, STEP_USER, STEP_CHDIR, STEP_EXEC };

static void child_fail(int fd, int step, int e) {
        int msg[2] = { step, e };
        ssize_t w = write(fd, msg, sizeof msg);
        (void)w;
        _exit(127);
}

int runner_spawn(const struct spawn *s, struct child *ret, char *err, size_t errlen) {
        int out[2], er[2], rep[2];
        if (pipe2(out, O_CLOEXEC) < 0)
                return -errno;
        if (pipe2(er, O_CLOEXEC) < 0) {
                close(out[0]), close(out[1]);
                return -errno;
        }
        if (pipe2(rep, O_CLOEXEC) < 0) {
                close(out[0]), close(out[1]), close(er[0]), close(er[1]);
                return -errno;
        }
        pid_t pid = fork();
        if (pid < 0) {
                int e = errno;
                close(out[0]), close(out[1]), close(er[0]), close(er[1]), close(rep[0]), close(rep[1]);
                snprintf(err, errlen, "fork failed: %s", strerror(e));
                return -e;
        }
        if (pid == 0) {
                /* child: only async-signal-safe calls from here on */
                sigset_t all;
                sigemptyset(&all);
                sigprocmask(SIG_SETMASK, &all, NULL);
                for (int sig = 1; sig < NSIG; sig++)
                        signal(sig, SIG_DFL);
                if (setsid() < 0)
                        child_fail(rep[1], STEP_SETSID, errno);
                int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out[1], 1) < 0 || dup2(er[1], 2) < 0)
                        child_fail(rep[1], STEP_STDIO, errno);
                if (s->user && s->user->switch_user) {
                        /* groups resolved before the fork; setgroups before giving up root (in this one-thread child
                         * libc's setgroups is the bare system call) */
                        if (setgroups((size_t)s->user->ngroups, s->user->groups) < 0 || setgid(s->user->gid) < 0 ||
                            setuid(s->user->uid) < 0)
                                child_fail(rep[1], STEP_USER, errno);
                }
                if (s->cwd && chdir(s->cwd) < 0)
                        child_fail(rep[1], STEP_CHDIR, errno);
                /* the experiment inherits only stdin/stdout/stderr, whatever a library forgot to mark */
                syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
                execve(s->argv[0], s->argv, s->envp);
                child_fail(rep[1], STEP_EXEC, errno);
        }
        close(out[1]);
        close(er[1]);
        close(rep[1]);
        int msg[2] = { 0, 0 };
        ssize_t n;
        do
                n = read(rep[0], msg, sizeof msg);
        while (n < 0 && errno == EINTR);
        close(rep[0]);
        if (n == sizeof msg) {
                int st;
                waitpid(pid, &st, 0);
                close(out[0]);
                close(er[0]);
                const char *who = s->user ? s->user->name : "?";
                switch (msg[0]) {
                case STEP_USER: snprintf(err, errlen, "cannot switch to user %s: %s", who, strerror(msg[1])); break;
                case STEP_CHDIR:
                        snprintf(err, errlen, "cannot enter the workdir %s as %s: %s", s->cwd, who, strerror(msg[1]));
                        break;
                case STEP_EXEC: snprintf(err, errlen, "cannot execute %s: %s", s->argv[0], strerror(msg[1])); break;
                default: snprintf(err, errlen, "cannot set up the experiment process: %s", strerror(msg[1])); break;
                }
                return -msg[1];
        }
        fcntl(out[0], F_SETFL, O_NONBLOCK);
        fcntl(er[0], F_SETFL, O_NONBLOCK);
        *ret = (struct child){ .pid = pid, .out_fd = out[0], .err_fd = er[0] };
        return 0;
}

int runner_signal_group(pid_t pgid, int sig) {
        if (pgid <= 1)
                return -EINVAL;
        return kill(-pgid, sig) < 0 ? -errno : 0;
}

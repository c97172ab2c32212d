/* runner.c — fork/exec of experiments as the run user, in their own process group. */
#include "run/runner.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <linux/close_range.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "util.h"

extern char **environ;

static int fill_user(const struct passwd *pw, struct run_user *u) {
        snprintf(u->name, sizeof u->name, "%s", pw->pw_name);
        u->uid = pw->pw_uid;
        u->gid = pw->pw_gid;
        snprintf(u->home, sizeof u->home, "%s", pw->pw_dir && *pw->pw_dir ? pw->pw_dir : "/");
        snprintf(u->shell, sizeof u->shell, "%s", pw->pw_shell && *pw->pw_shell ? pw->pw_shell : "/bin/sh");
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
        int r = posix_spawnp(&pid, "useradd", NULL, NULL, argv, environ);
        if (r != 0) {
                snprintf(err, errlen, "cannot create the 'mayfly' user: useradd: %s", strerror(r));
                return -r;
        }
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
        if (!WIFEXITED(st) || (WEXITSTATUS(st) != 0 && WEXITSTATUS(st) != 9 /* exists */)) {
                snprintf(err, errlen, "cannot create the 'mayfly' user: useradd failed");
                return -EIO;
        }
        return 0;
}

int run_user_resolve(const char *wanted, struct run_user *ret, char *err, size_t errlen) {
        struct run_user u = { 0 };
        if (geteuid() != 0) {
                struct passwd pw, *res = NULL;
                char buf[16384];
                if (getpwuid_r(geteuid(), &pw, buf, sizeof buf, &res) != 0 || !res) {
                        snprintf(err, errlen, "cannot look up the current user");
                        return -ENOENT;
                }
                fill_user(res, &u);
                if (wanted && strcmp(wanted, u.name) != 0) {
                        snprintf(err, errlen, "user '%s' requested but the agent is not root (running as '%s')",
                                 wanted, u.name);
                        return -EPERM;
                }
                *ret = u;
                return 0;
        }
        if (wanted) {
                if (lookup(wanted, &u) < 0) {
                        snprintf(err, errlen, "user '%s' does not exist", wanted);
                        return -ENOENT;
                }
        } else if (lookup("ec2-user", &u) < 0 && lookup("ubuntu", &u) < 0 && lookup("mayfly", &u) < 0) {
                int r = create_mayfly_user(err, errlen);
                if (r < 0)
                        return r;
                if (lookup("mayfly", &u) < 0) {
                        snprintf(err, errlen, "the 'mayfly' user was created but cannot be found");
                        return -ENOENT;
                }
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

static int strv_push(char ***v, size_t *n, size_t *cap, const char *fmt, const char *a, const char *b) {
        if (*n + 2 > *cap) {
                size_t nc = *cap ? *cap * 2 : 32;
                char **p = realloc(*v, nc * sizeof *p);
                if (!p)
                        return -ENOMEM;
                *v = p;
                *cap = nc;
        }
        size_t l = strlen(a) + (b ? strlen(b) : 0) + 2;
        char *s = malloc(l);
        if (!s)
                return -ENOMEM;
        snprintf(s, l, fmt, a, b ? b : "");
        (*v)[(*n)++] = s;
        (*v)[*n] = NULL;
        return 0;
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

char **runner_environment(const struct run_user *u, char *const *job_env, char *const *mayfly_env) {
        char **v = NULL;
        size_t n = 0, cap = 0;
        int r = strv_push(&v, &n, &cap, "%s%s", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                          NULL);
        if (r == 0)
                r = strv_push(&v, &n, &cap, "HOME=%s%s", u->home, NULL);
        if (r == 0)
                r = strv_push(&v, &n, &cap, "USER=%s%s", u->name, NULL);
        if (r == 0)
                r = strv_push(&v, &n, &cap, "LOGNAME=%s%s", u->name, NULL);
        if (r == 0)
                r = strv_push(&v, &n, &cap, "SHELL=%s%s", u->shell, NULL);
        for (char **e = environ; r == 0 && e && *e; e++)
                if (passthrough(*e))
                        r = strv_push(&v, &n, &cap, "%s%s", *e, NULL);
        for (char *const *e = job_env; r == 0 && e && *e; e++)
                r = strv_push(&v, &n, &cap, "%s%s", *e, NULL);
        for (char *const *e = mayfly_env; r == 0 && e && *e; e++)
                r = strv_push(&v, &n, &cap, "%s%s", *e, NULL);
        if (r < 0) {
                strv_free(v);
                return NULL;
        }
        return v;
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
                        if (initgroups(s->user->name, s->user->gid) < 0 || setgid(s->user->gid) < 0 ||
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

static int chown_walk(int dfd, uid_t uid, gid_t gid, int depth) {
        if (depth > 128)
                return -ELOOP;
        DIR *d = fdopendir(dfd);
        if (!d) {
                close(dfd);
                return -errno;
        }
        int r = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                if (fchownat(dirfd(d), de->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0 && r == 0)
                        r = -errno;
                struct stat st;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
                        int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub >= 0) {
                                int rr = chown_walk(sub, uid, gid, depth + 1);
                                if (rr < 0 && r == 0)
                                        r = rr;
                        }
                }
        }
        closedir(d);
        return r;
}

int chown_tree(const char *dir, uid_t uid, gid_t gid) {
        if (chown(dir, uid, gid) < 0)
                return -errno;
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return chown_walk(fd, uid, gid, 0);
}

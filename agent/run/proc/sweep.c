/* SPDX-License-Identifier: Apache-2.0 */
/* sweep.c — an ended experiment's leftover processes, found by the marker in their environment and killed. */
#include "run/proc/sweep.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/syscall.h>

#include "util.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

#define NOT_IT ((size_t)-1)

int sweep_new_marker(char ret[SWEEP_MARKER_LEN + 1]) {
        unsigned char b[SWEEP_MARKER_LEN / 2];
        size_t got = 0;
        while (got < sizeof b) {
                ssize_t n = getrandom(b + got, sizeof b - got, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                got += (size_t)n;
        }
        static const char hex[] = "0123456789abcdef";
        for (size_t i = 0; i < sizeof b; i++) {
                ret[2 * i] = hex[b[i] >> 4];
                ret[2 * i + 1] = hex[b[i] & 15];
        }
        ret[SWEEP_MARKER_LEN] = 0;
        return 0;
}

void envscan_init(struct envscan *s, const char *entry) {
        *s = (struct envscan){ .want = entry, .wlen = strlen(entry) };
}

void envscan_feed(struct envscan *s, const char *buf, size_t n) {
        for (size_t i = 0; i < n && !s->found; i++) {
                char c = buf[i];
                if (c == 0) {
                        if (s->pos == s->wlen)
                                s->found = true;
                        s->pos = 0;
                } else if (s->pos != NOT_IT) {
                        s->pos = s->pos < s->wlen && c == s->want[s->pos] ? s->pos + 1 : NOT_IT;
                }
        }
}

bool envscan_found(struct envscan *s) {
        if (!s->found && s->wlen && s->pos == s->wlen)
                s->found = true;
        return s->found;
}

bool environ_has(const char *blk, size_t n, const char *entry) {
        struct envscan s;
        envscan_init(&s, entry);
        envscan_feed(&s, blk, n);
        return envscan_found(&s);
}

int status_uids(const char *text, size_t n, uid_t ret[4]) {
        for (size_t i = 0; i < n;) {
                const char *line = text + i;
                const char *nl = memchr(line, '\n', n - i);
                size_t l = nl ? (size_t)(nl - line) : n - i;
                if (l > 4 && !memcmp(line, "Uid:", 4)) {
                        char buf[128];
                        if (l >= sizeof buf)
                                return -EINVAL;
                        memcpy(buf, line + 4, l - 4);
                        buf[l - 4] = 0;
                        char *p = buf;
                        for (int k = 0; k < 4; k++) {
                                char *end;
                                errno = 0;
                                unsigned long v = strtoul(p, &end, 10);
                                if (errno || end == p || v > (uid_t)-1)
                                        return -EINVAL;
                                ret[k] = (uid_t)v;
                                p = end;
                        }
                        return 0;
                }
                i += l + 1;
        }
        return -EINVAL;
}

/* Whether the process of the directory pfd holds entry in its environment: 1, 0, or -errno (unreadable). */
static int has_marker(int pfd, const char *entry) {
        _cleanup_close_ int fd = openat(pfd, "environ", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        struct envscan s;
        envscan_init(&s, entry);
        char buf[16384];
        for (size_t total = 0; total < SWEEP_ENVIRON_MAX && !s.found;) {
                ssize_t n = read(fd, buf, sizeof buf);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                envscan_feed(&s, buf, (size_t)n);
                total += (size_t)n;
        }
        return envscan_found(&s);
}

static bool of_uid(int pfd, uid_t uid) {
        _cleanup_close_ int fd = openat(pfd, "status", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        char buf[SWEEP_STATUS_MAX];
        size_t len = 0;
        for (ssize_t n; len < sizeof buf; len += (size_t)n) {
                n = read(fd, buf + len, sizeof buf - len);
                if (n < 0 && errno == EINTR) {
                        n = 0;
                        continue;
                }
                if (n <= 0)
                        break;
        }
        uid_t u[4];
        return status_uids(buf, len, u) == 0 && (u[0] == uid || u[1] == uid || u[2] == uid);
}

/* Up to n-1 bytes of a small /proc file (at dirfd, name) into buf, NUL-terminated: its length, or -errno. */
static ssize_t read_small(int dirfd, const char *name, char *buf, size_t n) {
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        size_t len = 0;
        for (ssize_t r; len < n - 1; len += (size_t)r) {
                r = read(fd, buf + len, n - 1 - len);
                if (r < 0 && errno == EINTR) {
                        r = 0;
                        continue;
                }
                if (r < 0)
                        return -errno;
                if (r == 0)
                        break;
        }
        buf[len] = 0;
        return (ssize_t)len;
}

bool cgroup_is_unit(const char *text) {
        for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
                size_t n = strcspn(l, "\n");
                const char *path = NULL;
                if (!strncmp(l, "0::", 3))
                        path = l + 3;
                else if (memmem(l, n, ":name=systemd:", 14))
                        path = (const char *)memmem(l, n, ":name=systemd:", 14) + 14;
                size_t pl = path ? n - (size_t)(path - l) : 0;
                if (path && pl > 8 && !memcmp(path + pl - 8, ".service", 8))
                        return true;
        }
        return false;
}

/* The agent's own cgroup(s) (/proc/self/cgroup), when systemd made them a service's: every process of the run user
 * in there is the experiment's, whatever its environment says. "" otherwise (a container: the marker alone). */
static const char *own_unit_cgroup(void) {
        static char mine[SWEEP_CGROUP_MAX];
        static bool read_once;
        if (!read_once) {
                read_once = true;
                if (read_small(AT_FDCWD, "/proc/self/cgroup", mine, sizeof mine) <= 0 || !cgroup_is_unit(mine))
                        mine[0] = 0;
        }
        return mine;
}

/* Whether the process of the directory pfd is in the agent's own service cgroup. */
static bool in_my_unit(int pfd) {
        const char *mine = own_unit_cgroup();
        if (!mine[0])
                return false;
        char theirs[SWEEP_CGROUP_MAX];
        return read_small(pfd, "cgroup", theirs, sizeof theirs) > 0 && !strcmp(theirs, mine);
}

/* SIGKILL to the process pid is (the pidfd, taken before its environ was read, names the one examined). */
static bool kill_it(int pidfd, pid_t pid) {
        if (pidfd >= 0)
                return syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0) == 0;
        return kill(pid, SIGKILL) == 0;
}

static int one(int procfd, pid_t pid, uid_t uid, const char *entry, size_t *unreadable) {
        char name[16];
        snprintf(name, sizeof name, "%d", (int)pid);
        /* the pidfd first: if pid is reused after it, the reads below see the new process, the signal the old one
         * (gone: ESRCH), never the other way round */
        _cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (pidfd < 0 && errno == ESRCH)
                return 0;
        _cleanup_close_ int pfd = openat(procfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pfd < 0 || !of_uid(pfd, uid))
                return 0; /* gone meanwhile, or not the user's */
        /* under systemd, the run user's processes in the agent's own unit are the experiment's: marked or not (one
         * that cleared its environment is still there) */
        /* (not when the run user is root or the agent's own user: the agent's helpers share the unit and the uid) */
        int m = uid != 0 && uid != geteuid() && in_my_unit(pfd) ? 1 : has_marker(pfd, entry);
        if (m < 0 && m != -ESRCH) {
                (*unreadable)++;
                return 0;
        }
        return m > 0 && kill_it(pidfd, pid) ? 1 : 0;
}

int sweep_once(uid_t uid, const char *marker, size_t *ret_unreadable) {
        char entry[sizeof SWEEP_MARKER_VAR + SWEEP_MARKER_LEN + 2];
        size_t unreadable = 0;
        if (!marker || strlen(marker) != SWEEP_MARKER_LEN)
                return -EINVAL;
        snprintf(entry, sizeof entry, "%s=%s", SWEEP_MARKER_VAR, marker);
        _cleanup_close_ int procfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (procfd < 0)
                return -errno;
        int dfd = dup(procfd);
        DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
        if (!d) {
                if (dfd >= 0)
                        close(dfd);
                return -errno;
        }
        pid_t self = getpid();
        int killed = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                char *end;
                errno = 0;
                long pid = strtol(de->d_name, &end, 10);
                if (errno || end == de->d_name || *end || pid <= 1 || pid > INT32_MAX || pid == self)
                        continue;
                killed += one(procfd, (pid_t)pid, uid, entry, &unreadable);
        }
        closedir(d);
        if (ret_unreadable)
                *ret_unreadable = unreadable;
        return killed;
}

int sweep_run(struct waiter *w, uid_t uid, const char *marker, double seconds, size_t *ret_killed) {
        double until = now_mono() + seconds;
        size_t total = 0;
        int r;
        for (;;) {
                r = sweep_once(uid, marker, NULL);
                if (r > 0)
                        total += (size_t)r;
                if (r <= 0 || now_mono() >= until)
                        break;
                /* killed processes are gone (or zombies, whose environ reads empty) a moment later */
                if (w)
                        waiter_poll(w, NULL, 0, 20);
                else
                        worker_nap(0.02);
        }
        if (ret_killed)
                *ret_killed = total;
        return r;
}

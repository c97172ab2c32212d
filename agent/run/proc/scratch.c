/* SPDX-License-Identifier: Apache-2.0 */
/* scratch.c — the instance store found, made into one file system, mounted; the run user's directory on it
 * (scratch.h). */
#include "run/proc/scratch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "util.h"

#define SYSFS_VALUE_MAX 4096

static inline void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

const char *scratch_model(void) {
        const char *m = env_nonempty(SCRATCH_MODEL_ENV);
        return m ? m : SCRATCH_MODEL_DEFAULT;
}

void scratch_where_default(struct scratch_where *w, char *holder, size_t holderlen) {
        *w = (struct scratch_where){ .sys = "/sys", .dev = "/dev", .mountinfo = "/proc/self/mountinfo",
                                     .swaps = "/proc/swaps", .model = scratch_model() };
        char link[256];
        ssize_t n = readlink(SCRATCH_MD, link, sizeof link - 1);
        if (n > 0 && holder && holderlen) {
                link[n] = 0;
                const char *b = strrchr(link, '/');
                str_copy(holder, holderlen, b ? b + 1 : link);
                w->holder = holder;
        }
}

/* The length of s without its trailing white space. */
static size_t trimmed_len(const char *s) {
        size_t n = strlen(s);
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t' || s[n - 1] == '\r'))
                n--;
        return n;
}

bool scratch_model_is(const char *read, const char *want) {
        if (!read || !want)
                return false;
        size_t a = trimmed_len(read), b = trimmed_len(want);
        return a == b && a > 0 && memcmp(read, want, a) == 0;
}

void scratch_parse_blkid(const char *out, char *type, size_t tlen, char *label, size_t llen) {
        type[0] = label[0] = 0;
        for (const char *p = out; p && *p;) {
                const char *e = strchr(p, '\n');
                size_t n = e ? (size_t)(e - p) : strlen(p);
                if (n > 5 && !strncmp(p, "TYPE=", 5))
                        snprintf(type, tlen, "%.*s", (int)(n - 5), p + 5);
                else if (n > 6 && !strncmp(p, "LABEL=", 6))
                        snprintf(label, llen, "%.*s", (int)(n - 6), p + 6);
                p = e ? e + 1 : NULL;
        }
}

bool scratch_sig_ours(const char *type, const char *label) {
        if (!strcmp(type, "ext4"))
                return !strcmp(label, SCRATCH_LABEL);
        /* an md member's label is the array's name, "homehost:name" unless made with --homehost=any */
        if (!strcmp(type, "linux_raid_member")) {
                const char *c = strrchr(label, ':');
                return !strcmp(c ? c + 1 : label, SCRATCH_LABEL);
        }
        return false;
}

/* A small sysfs value into buf (NUL-terminated); -errno. */
static int read_value(const char *path, char *buf, size_t len) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = read(fd, buf, len - 1);
        if (n < 0)
                return -errno;
        buf[n] = 0;
        return 0;
}

/* Whether name is "nvme<digits>n<digits>" (a namespace's block device, not a path "nvme0c0n1" or a partition). */
static bool is_namespace(const char *name) {
        const char *p = name;
        if (strncmp(p, "nvme", 4))
                return false;
        p += 4;
        if (!(*p >= '0' && *p <= '9'))
                return false;
        while (*p >= '0' && *p <= '9')
                p++;
        if (*p++ != 'n' || !(*p >= '0' && *p <= '9'))
                return false;
        while (*p >= '0' && *p <= '9')
                p++;
        return *p == 0;
}

/* Whether a line of the mount table (mountinfo) is for device majmin; its mount point into at. */
static bool mountinfo_has_dev(const char *mountinfo, const char *majmin, char *at, size_t atlen) {
        _cleanup_(fclosep) FILE *f = fopen(mountinfo, "re");
        char line[4096];
        while (f && fgets(line, sizeof line, f)) {
                char mm[64], mp[2048];
                if (sscanf(line, "%*s %*s %63s %*s %2047s", mm, mp) == 2 && !strcmp(mm, majmin)) {
                        str_copy(at, atlen, mp);
                        return true;
                }
        }
        return false;
}

bool scratch_mounted(const char *mountinfo, char *src, size_t srclen) {
        _cleanup_(fclosep) FILE *f = fopen(mountinfo, "re");
        char line[4096];
        while (f && fgets(line, sizeof line, f)) {
                char mp[2048];
                if (sscanf(line, "%*s %*s %*s %*s %2047s", mp) != 1 || strcmp(mp, SCRATCH_MOUNT))
                        continue;
                const char *dash = strstr(line, " - ");
                char fs[64] = "", s[256] = "";
                if (src && srclen) {
                        if (dash && sscanf(dash + 3, "%63s %255s", fs, s) == 2)
                                str_copy(src, srclen, s);
                        else
                                str_copy(src, srclen, "?");
                }
                return true;
        }
        return false;
}

static bool in_swaps(const char *swaps, const char *path) {
        _cleanup_(fclosep) FILE *f = swaps ? fopen(swaps, "re") : NULL;
        char line[1024];
        size_t n = strlen(path);
        while (f && fgets(line, sizeof line, f))
                if (!strncmp(line, path, n) && (line[n] == ' ' || line[n] == '\t'))
                        return true;
        return false;
}

/* Why namespace name must be left alone ("" when it is free to use). */
static void busy_reason(const struct scratch_where *w, const char *name, const char *path, char *why, size_t len) {
        char p[1024], mm[64] = "", at[2048];
        why[0] = 0;
        if (pathf(p, sizeof p, "%s/class/block/%s/dev", w->sys, name) < 0 || read_value(p, mm, sizeof mm) < 0) {
                snprintf(why, len, "no block device in sysfs");
                return;
        }
        mm[trimmed_len(mm)] = 0;
        if (mountinfo_has_dev(w->mountinfo, mm, at, sizeof at)) {
                snprintf(why, len, "mounted at %.200s", at);
                return;
        }
        if (in_swaps(w->swaps, path)) {
                snprintf(why, len, "used as swap");
                return;
        }
        _cleanup_(closedirp) DIR *d = NULL;
        if (pathf(p, sizeof p, "%s/class/block/%s", w->sys, name) == 0 && (d = opendir(p)))
                for (struct dirent *de; (de = readdir(d));)
                        if (str_has_prefix(de->d_name, name) && strlen(de->d_name) > strlen(name)) {
                                snprintf(why, len, "holds partitions");
                                return;
                        }
        _cleanup_(closedirp) DIR *h = NULL;
        if (pathf(p, sizeof p, "%s/class/block/%s/holders", w->sys, name) == 0 && (h = opendir(p)))
                for (struct dirent *de; (de = readdir(h));)
                        if (de->d_name[0] != '.' && !(w->holder && !strcmp(de->d_name, w->holder))) {
                                snprintf(why, len, "held by %.60s", de->d_name);
                                return;
                        }
}

static void note_skip(struct scratch_scan *s, const char *name, const char *why) {
        size_t n = strlen(s->skipped);
        if (n + 1 < sizeof s->skipped)
                snprintf(s->skipped + n, sizeof s->skipped - n, "%s%s (%s)", n ? ", " : "", name, why);
}

/* One namespace of a matching controller: used, or noted as skipped. */
static int take_namespace(const struct scratch_where *w, const char *name, struct scratch_scan *s) {
        for (size_t i = 0; i < s->n; i++)
                if (!strcmp(s->dev[i].name, name))
                        return 0; /* seen through its subsystem already */
        struct scratch_dev d = { 0 };
        str_copy(d.name, sizeof d.name, name);
        if (pathf(d.path, sizeof d.path, "%s/%s", w->dev, name) < 0)
                return -ENAMETOOLONG;
        char why[256];
        busy_reason(w, name, d.path, why, sizeof why);
        if (why[0]) {
                note_skip(s, name, why);
                return 0;
        }
        char p[1024], v[64];
        uint64_t sectors = 0;
        if (pathf(p, sizeof p, "%s/class/block/%s/size", w->sys, name) == 0 && read_value(p, v, sizeof v) == 0) {
                v[trimmed_len(v)] = 0;
                if (parse_u64(v, &sectors) < 0)
                        sectors = 0;
        }
        d.bytes = sectors * 512;
        if (s->n >= SCRATCH_MAX_DEVS)
                return -E2BIG;
        s->dev[s->n++] = d;
        return 0;
}

/* The namespaces right under a directory (a controller's, or its subsystem's). */
static int take_namespaces_in(const struct scratch_where *w, const char *dir, struct scratch_scan *s, size_t *found) {
        _cleanup_(closedirp) DIR *d = opendir(dir);
        if (!d)
                return 0;
        for (struct dirent *de; (de = readdir(d));) {
                if (!is_namespace(de->d_name))
                        continue;
                (*found)++;
                int r = take_namespace(w, de->d_name, s);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* A controller under native NVMe multipath: its namespaces are the heads in the subsystem that holds it. */
static int take_subsystem_namespaces(const struct scratch_where *w, const char *ctrl, struct scratch_scan *s,
                                     size_t *found) {
        char p[1024];
        if (pathf(p, sizeof p, "%s/class/nvme-subsystem", w->sys) < 0)
                return -ENAMETOOLONG;
        _cleanup_(closedirp) DIR *d = opendir(p);
        for (struct dirent *de; d && (de = readdir(d));) {
                char q[1300];
                struct stat st;
                if (de->d_name[0] == '.' || pathf(q, sizeof q, "%s/%s/%s", p, de->d_name, ctrl) < 0 ||
                    stat(q, &st) < 0 || pathf(q, sizeof q, "%s/%s", p, de->d_name) < 0)
                        continue;
                int r = take_namespaces_in(w, q, s, found);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int by_name(const void *a, const void *b) {
        const struct scratch_dev *x = a, *y = b;
        size_t lx = strlen(x->name), ly = strlen(y->name);
        return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x->name, y->name); /* nvme2n1 before nvme10n1 */
}

int scratch_find(const struct scratch_where *w, struct scratch_scan *ret) {
        struct scratch_scan *s = ret;
        memset(s, 0, sizeof *s);
        char p[1024];
        if (pathf(p, sizeof p, "%s/class/nvme", w->sys) < 0)
                return -ENAMETOOLONG;
        struct dirent **list = NULL;
        int n = scandir(p, &list, NULL, versionsort); /* nvme2 before nvme10: what is skipped is said in order */
        if (n < 0)
                return errno == ENOENT ? 0 : -errno;
        int r = 0;
        for (int i = 0; i < n && r == 0; i++) {
                const struct dirent *de = list[i];
                if (!str_has_prefix(de->d_name, "nvme"))
                        continue;
                char q[1300], model[SYSFS_VALUE_MAX];
                if (pathf(q, sizeof q, "%s/%s/model", p, de->d_name) < 0 || read_value(q, model, sizeof model) < 0)
                        continue;
                if (!scratch_model_is(model, w->model)) {
                        s->other++;
                        continue;
                }
                size_t found = 0;
                r = pathf(q, sizeof q, "%s/%s", p, de->d_name) < 0 ? -ENAMETOOLONG
                                                                     : take_namespaces_in(w, q, s, &found);
                if (r == 0 && found == 0)
                        r = take_subsystem_namespaces(w, de->d_name, s, &found);
        }
        for (int i = 0; i < n; i++)
                free(list[i]);
        free(list);
        qsort(s->dev, s->n, sizeof s->dev[0], by_name);
        return r;
}

/* ---------- the shell: blkid, mdadm, mkfs.ext4, mount ---------- */

/* Runs argv; 0 when it exited 0, else -errno with err "<what>: <its stderr>". ok2: exit 2 is an answer too (1). */
static int run_cmd(char *const *argv, bool ok2, char *out, size_t outlen, char *err, size_t errlen) {
        char e[600];
        int st = 0;
        int r = child_run(argv, SCRATCH_CMD_TIMEOUT, out, outlen, e, sizeof e, &st);
        if (r == -ENOENT) {
                errf(err, errlen, "%s is not installed (the instance store needs %s)", argv[0],
                     !strcmp(argv[0], "mdadm") ? "mdadm for a RAID 0 of its devices" : "util-linux and e2fsprogs");
                return r;
        }
        if (r == -ETIMEDOUT) {
                errf(err, errlen, "%s %s: no end within %d s, killed", argv[0], argv[1], SCRATCH_CMD_TIMEOUT);
                return r;
        }
        if (r < 0) {
                errf(err, errlen, "%s: %s", argv[0], strerror(-r));
                return r;
        }
        if (ok2 && WIFEXITED(st) && WEXITSTATUS(st) == 2)
                return 1;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
                return 0;
        char cmd[300] = "";
        for (size_t i = 0, n = 0; argv[i] && n + 1 < sizeof cmd; i++)
                n += (size_t)snprintf(cmd + n, sizeof cmd - n, "%s%s", i ? " " : "", argv[i]);
        errf(err, errlen, "%s %s %d: %s", cmd, WIFEXITED(st) ? "exited with status" : "was killed by signal",
             WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), e[0] ? e : "(nothing on stderr)");
        return -EIO;
}

/* TYPE and LABEL of what is on dev ("" nothing). The device is opened first: blkid says "nothing found" (exit 2)
 * for a device it cannot read too, and a device that cannot be read must never count as blank. */
static int probe_dev(const char *dev, char *type, size_t tlen, char *label, size_t llen, char *err, size_t errlen) {
        int fd = open(dev, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) {
                int r = -errno;
                errf(err, errlen, "cannot read %s: %s", dev, strerror(-r));
                return r;
        }
        close(fd);
        char out[2048];
        char *const argv[] = { "blkid", "-p", "-o", "export", (char *)dev, NULL };
        int r = run_cmd(argv, true, out, sizeof out, err, errlen);
        if (r < 0)
                return r;
        if (r == 1)
                out[0] = 0;
        scratch_parse_blkid(out, type, tlen, label, llen);
        return 0;
}

int scratch_probe(struct scratch_scan *s, char *err, size_t errlen) {
        size_t k = 0;
        for (size_t i = 0; i < s->n; i++) {
                struct scratch_dev *d = &s->dev[i];
                int r = probe_dev(d->path, d->type, sizeof d->type, d->label, sizeof d->label, err, errlen);
                if (r < 0)
                        return r;
                if (d->type[0] && !scratch_sig_ours(d->type, d->label)) {
                        char why[200];
                        snprintf(why, sizeof why, "holds %.32s%s%.64s%s, not mayfly's", d->type,
                                 d->label[0] ? " labelled '" : "", d->label, d->label[0] ? "'" : "");
                        note_skip(s, d->name, why);
                        continue;
                }
                s->dev[k++] = *d;
        }
        s->n = k;
        return 0;
}

/* The devices' RAID 0 at SCRATCH_MD: there already, assembled from its members, or created (*fresh). */
static int array_up(const struct scratch_scan *s, bool *fresh, char *err, size_t errlen) {
        struct stat st;
        if (stat(SCRATCH_MD, &st) == 0 && S_ISBLK(st.st_mode))
                return 0; /* assembled at boot (udev's incremental assembly) or by an earlier start */
        size_t ours = 0, blank = 0;
        for (size_t i = 0; i < s->n; i++) {
                ours += !strcmp(s->dev[i].type, "linux_raid_member");
                blank += !s->dev[i].type[0];
        }
        char *argv[SCRATCH_MAX_DEVS + 16];
        size_t a = 0;
        char ndev[16];
        snprintf(ndev, sizeof ndev, "%zu", s->n);
        argv[a++] = "mdadm";
        if (ours == s->n) {
                argv[a++] = "--assemble";
                argv[a++] = SCRATCH_MD;
                argv[a++] = "--run";
        } else if (blank == s->n) {
                char *create[] = { "--create", SCRATCH_MD, "--run", "--level=0", "--raid-devices", ndev,
                                   "--metadata=1.2", "--homehost=any", "--name=" SCRATCH_LABEL };
                for (size_t i = 0; i < ARRAY_SIZE(create); i++)
                        argv[a++] = create[i];
                *fresh = true;
        } else {
                char list[400] = "";
                for (size_t i = 0, n = 0; i < s->n && n + 1 < sizeof list; i++)
                        n += (size_t)snprintf(list + n, sizeof list - n, "%s%s (%s)", i ? ", " : "", s->dev[i].name,
                                              s->dev[i].type[0] ? s->dev[i].type : "blank");
                errf(err, errlen, "the instance store's devices hold part of an earlier %s array but not all of it: "
                     "%s; left alone", SCRATCH_LABEL, list);
                return -EEXIST;
        }
        for (size_t i = 0; i < s->n; i++)
                argv[a++] = (char *)s->dev[i].path;
        argv[a] = NULL;
        return run_cmd(argv, false, NULL, 0, err, errlen);
}

static int mkfs(const char *dev, char *err, size_t errlen) {
        /* -m 0: no blocks kept for root (the experiment's disk); lazy init and no discard: seconds, not minutes */
        char *const argv[] = { "mkfs.ext4", "-q", "-F", "-L", SCRATCH_LABEL, "-m", "0", "-E",
                               "nodiscard,lazy_itable_init=1,lazy_journal_init=1", (char *)dev, NULL };
        return run_cmd(argv, false, NULL, 0, err, errlen);
}

static uint64_t fs_bytes(const char *path) {
        struct statvfs v;
        return statvfs(path, &v) == 0 ? (uint64_t)v.f_blocks * v.f_frsize : 0;
}

int scratch_mount(const struct scratch_scan *s, const char *mountinfo, struct scratch_result *ret, char *err,
                  size_t errlen) {
        struct scratch_result res = { .what = "already mounted" };
        if (scratch_mounted(mountinfo, res.device, sizeof res.device)) {
                res.bytes = fs_bytes(SCRATCH_MOUNT);
                *ret = res;
                return 0;
        }
        if (s->n == 0) {
                errf(err, errlen, "no instance-store device to use");
                return -ENODEV;
        }
        bool fresh = false;
        int r = 0;
        if (s->n == 1)
                str_copy(res.device, sizeof res.device, s->dev[0].path);
        else {
                str_copy(res.device, sizeof res.device, SCRATCH_MD);
                r = array_up(s, &fresh, err, errlen);
        }
        char type[32] = "", label[96] = "";
        if (r == 0 && !fresh)
                r = probe_dev(res.device, type, sizeof type, label, sizeof label, err, errlen);
        if (r < 0)
                return r;
        if (!fresh && !strcmp(type, "ext4") && !strcmp(label, SCRATCH_LABEL))
                res.what = "reused";
        else if (fresh || !type[0]) {
                res.what = "formatted";
                r = mkfs(res.device, err, errlen);
                if (r < 0)
                        return r;
        } else {
                errf(err, errlen, "%s holds %s%s%s, not mayfly's file system: left alone", res.device, type,
                     label[0] ? " labelled " : "", label);
                return -EEXIST;
        }
        if (mkdir(SCRATCH_MOUNT, 0755) < 0 && errno != EEXIST) {
                r = -errno;
                errf(err, errlen, "cannot make %s: %s", SCRATCH_MOUNT, strerror(-r));
                return r;
        }
        struct stat st;
        if (lstat(SCRATCH_MOUNT, &st) < 0 || !S_ISDIR(st.st_mode)) {
                errf(err, errlen, "%s is not a directory", SCRATCH_MOUNT);
                return -ENOTDIR;
        }
        if (mount(res.device, SCRATCH_MOUNT, "ext4", MS_NOSUID | MS_NODEV | MS_NOATIME, "") < 0) {
                r = -errno;
                errf(err, errlen, "mount %s on %s: %s", res.device, SCRATCH_MOUNT, strerror(-r));
                return r;
        }
        res.bytes = fs_bytes(SCRATCH_MOUNT);
        *ret = res;
        return 0;
}

/* Whether a directory (fd) has nothing in it but lost+found. */
static bool dir_empty(int fd) {
        int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (d < 0)
                return false;
        _cleanup_(closedirp) DIR *dir = fdopendir(d);
        if (!dir) {
                close(d);
                return false;
        }
        for (struct dirent *de; (de = readdir(dir));)
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                        return false;
        return true;
}

int scratch_user_dir(int basefd, const char *name, uid_t uid, gid_t gid, char *err, size_t errlen) {
        if (!name[0] || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..")) {
                errf(err, errlen, "'%s' cannot name a directory", name);
                return -EINVAL;
        }
        bool made = mkdirat(basefd, name, 0700) == 0;
        if (!made && errno != EEXIST) {
                int r = -errno;
                errf(err, errlen, "cannot make %s: %s", name, strerror(-r));
                return r;
        }
        _cleanup_close_ int fd = openat(basefd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                int r = -errno;
                errf(err, errlen, "%s: %s", name, r == -ELOOP || r == -ENOTDIR ? "not a directory (a link?): refused"
                                                                               : strerror(-r));
                return r == -ELOOP ? -ENOTDIR : r;
        }
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_uid != uid) {
                if (!made && !(st.st_uid == 0 && dir_empty(fd))) {
                        errf(err, errlen, "%s belongs to uid %u, not the run user's uid %u: refused", name,
                             (unsigned)st.st_uid, (unsigned)uid);
                        return -EPERM;
                }
                if (fchown(fd, uid, gid) < 0) {
                        int r = -errno;
                        errf(err, errlen, "cannot give %s to uid %u: %s", name, (unsigned)uid, strerror(-r));
                        return r;
                }
        }
        if ((made || st.st_uid != uid) && fchmod(fd, 0700) < 0)
                return -errno;
        int ret = fd;
        fd = -1;
        return ret;
}

/* ---------- the whole set-up, and its record ---------- */

void scratch_setup(struct scratch_setup *ret) {
        struct scratch_setup *ss = ret;
        memset(ss, 0, sizeof *ss);
        struct scratch_where w;
        char holder[64] = "";
        scratch_where_default(&w, holder, sizeof holder);
        if (scratch_mounted(w.mountinfo, NULL, 0)) {
                ss->rc = scratch_mount(&ss->scan, w.mountinfo, &ss->res, ss->err, sizeof ss->err);
                return;
        }
        /* udev's own work first (an array it is assembling at boot, links in /dev/md): settled, or 30 s */
        char *const settle[] = { "udevadm", "settle", "--timeout=30", NULL };
        int st;
        child_run(settle, 40, NULL, 0, NULL, 0, &st);
        scratch_where_default(&w, holder, sizeof holder);
        ss->rc = scratch_find(&w, &ss->scan);
        if (ss->rc < 0) {
                errf(ss->err, sizeof ss->err, "cannot list the NVMe devices in /sys/class/nvme: %s", strerror(-ss->rc));
                return;
        }
        if (ss->scan.n > 0 && (ss->rc = scratch_probe(&ss->scan, ss->err, sizeof ss->err)) < 0)
                return;
        if (ss->scan.n == 0) {
                ss->none = true;
                ss->rc = -ENODEV;
                return;
        }
        ss->rc = scratch_mount(&ss->scan, w.mountinfo, &ss->res, ss->err, sizeof ss->err);
}

int scratch_record_format(const struct scratch_setup *s, char *out, size_t outlen) {
        char devs[SCRATCH_MAX_DEVS * 33] = "";
        for (size_t i = 0, n = 0; i < s->scan.n && n + 1 < sizeof devs; i++)
                n += (size_t)snprintf(devs + n, sizeof devs - n, "%s%s", i ? " " : "", s->scan.dev[i].name);
        int w = snprintf(out, outlen, "rc=%d\nnone=%d\nwhat=%s\ndevice=%s\nbytes=%llu\ndevices=%s\nother=%zu\n"
                         "skipped=%s\nerror=%s\n", s->rc, s->none ? 1 : 0, s->res.what ? s->res.what : "",
                         s->res.device, (unsigned long long)s->res.bytes, devs, s->scan.other, s->scan.skipped, s->err);
        return w < 0 || (size_t)w >= outlen ? -ENOBUFS : 0;
}

int scratch_record_parse(const char *text, struct scratch_setup *ret) {
        struct scratch_setup s = { 0 };
        bool have_rc = false;
        for (const char *p = text; p && *p;) {
                const char *e = strchr(p, '\n');
                size_t n = e ? (size_t)(e - p) : strlen(p);
                char line[1200];
                snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), p);
                p = e ? e + 1 : NULL;
                char *v = strchr(line, '=');
                if (!v)
                        continue;
                *v++ = 0;
                long l;
                uint64_t u;
                if (!strcmp(line, "rc") && parse_int(v, -4096, 0, &l) == 0) {
                        s.rc = (int)l;
                        have_rc = true;
                } else if (!strcmp(line, "none"))
                        s.none = !strcmp(v, "1");
                else if (!strcmp(line, "what"))
                        s.res.what = !strcmp(v, "formatted") ? "formatted" : !strcmp(v, "reused") ? "reused"
                                   : !strcmp(v, "already mounted") ? "already mounted" : NULL;
                else if (!strcmp(line, "device"))
                        str_copy(s.res.device, sizeof s.res.device, v);
                else if (!strcmp(line, "bytes") && parse_u64(v, &u) == 0)
                        s.res.bytes = u;
                else if (!strcmp(line, "other") && parse_u64(v, &u) == 0)
                        s.scan.other = (size_t)u;
                else if (!strcmp(line, "skipped"))
                        str_copy(s.scan.skipped, sizeof s.scan.skipped, v);
                else if (!strcmp(line, "error"))
                        str_copy(s.err, sizeof s.err, v);
                else if (!strcmp(line, "devices"))
                        for (char *t = v, *sp; t && *t && s.scan.n < SCRATCH_MAX_DEVS; t = sp) {
                                sp = strchr(t, ' ');
                                if (sp)
                                        *sp++ = 0;
                                str_copy(s.scan.dev[s.scan.n++].name, sizeof s.scan.dev[0].name, t);
                        }
        }
        if (!have_rc || (s.rc == 0 && !s.res.what))
                return -EINVAL;
        *ret = s;
        return 0;
}

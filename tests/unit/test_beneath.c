/* SPDX-License-Identifier: Apache-2.0 */
/* test_beneath.c — paths resolved beneath a tree (openat2, and the O_NOFOLLOW walk of kernels without it), and
 * file work as the run user (as_user): what the user could not do, the thread cannot either; what it creates is
 * the user's. */
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <sys/stat.h>

#include "beneath.h"
#include "run/proc/asuser.h"
#include "util.h"
#include "test.h"

static char top[] = "/tmp/mayfly-beneath-test-XXXXXX";
static int rootfd = -1;

static void mkfile(const char *rel, mode_t mode) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", top, rel);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (fd >= 0) {
                ssize_t w = write(fd, "x\n", 2);
                (void)w;
                close(fd);
        }
}

static void mklink(const char *rel, const char *target) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", top, rel);
        if (symlink(target, p) < 0)
                perror(p);
}

static void build_tree(void) {
        char p[600];
        snprintf(p, sizeof p, "%s/tree", top);
        mkdir(p, 0755);
        snprintf(p, sizeof p, "%s/tree/d", top);
        mkdir(p, 0755);
        mkfile("tree/d/f", 0644);
        mkfile("secret", 0600);                 /* outside the tree */
        mklink("tree/in", "d/f");               /* inside */
        mklink("tree/d/up", "../d/f");          /* inside, through .. */
        mklink("tree/abs", "/etc/passwd");      /* absolute */
        mklink("tree/out", "../secret");        /* out by .. */
        mklink("tree/dirlink", "d");            /* a directory inside */
        mklink("tree/etc", "/etc");             /* a directory outside */
        snprintf(p, sizeof p, "%s/tree", top);
        rootfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static void test_resolution(bool fallback) {
        beneath_force_fallback(fallback);
        const char *mode = fallback ? "no openat2" : "openat2";
        struct { const char *rel; int want, want_fallback; } cases[] = {
                { "d/f", 0, 0 },            { "", 0, 0 },                   { "in", 0, -ELOOP },
                { "d/up", 0, -ELOOP },      { "abs", -EXDEV, -ELOOP },      { "out", -EXDEV, -ELOOP },
                { "dirlink/f", 0, -ELOOP }, { "etc/passwd", -EXDEV, -ELOOP }, { "../secret", -EINVAL, -EINVAL },
                { "/etc/passwd", -EINVAL, -EINVAL }, { "d/./f", -EINVAL, -EINVAL }, { "d//f", -EINVAL, -EINVAL },
                { "missing", -ENOENT, -ENOENT },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                int fd = beneath_open(rootfd, cases[i].rel, O_RDONLY, 0);
                int want = fallback ? cases[i].want_fallback : cases[i].want;
                char name[200];
                snprintf(name, sizeof name, "%s: open '%s' -> %s", mode, cases[i].rel, want ? strerror(-want) : "opened");
                t_result(name, want ? fd == want : fd >= 0, "got %d (%s)", fd, fd < 0 ? strerror(-fd) : "an fd");
                if (fd >= 0)
                        close(fd);
        }
        T_EXPECT("refused: EXDEV and ELOOP", beneath_refused(-EXDEV) && beneath_refused(-ELOOP) && !beneath_refused(-ENOENT));
        /* mkdir -p beneath: never through a link out */
        char name[200];
        int fd = beneath_mkdirs(rootfd, fallback ? "new2/a/b" : "new/a/b", 0755);
        snprintf(name, sizeof name, "%s: mkdirs creates the chain", mode);
        t_result(name, fd >= 0, "%d", fd);
        if (fd >= 0)
                close(fd);
        fd = beneath_mkdirs(rootfd, "etc/mayfly-planted", 0755);
        snprintf(name, sizeof name, "%s: mkdirs through a link out is refused", mode);
        char planted[64];
        snprintf(planted, sizeof planted, "/etc/mayfly-planted");
        t_result(name, beneath_refused(fd) && access(planted, F_OK) != 0, "%d", fd);
        beneath_force_fallback(false);
}

struct probe {
        int rootfd;
        char path[600];
        int read_rc, create_rc;
        uid_t owner;
};

static int probe_fn(void *ud) {
        struct probe *p = ud;
        int fd = open(p->path, O_RDONLY | O_CLOEXEC);
        p->read_rc = fd < 0 ? -errno : 0;
        if (fd >= 0)
                close(fd);
        fd = beneath_open(p->rootfd, "made-by-user", O_WRONLY | O_CREAT | O_EXCL, 0644);
        p->create_rc = fd < 0 ? fd : 0;
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0)
                p->owner = st.st_uid;
        if (fd >= 0)
                close(fd);
        return 7;
}

static void test_as_user(void) {
        struct passwd *pw = getpwnam("nobody");
        if (geteuid() != 0 || !pw) {
                printf("SKIP as_user: needs root and a 'nobody' user\n");
                return;
        }
        struct run_user u = { .uid = pw->pw_uid, .gid = pw->pw_gid, .switch_user = true, .ngroups = 1 };
        u.groups[0] = pw->pw_gid;
        snprintf(u.name, sizeof u.name, "nobody");
        /* the user must be able to write in the tree, as in a workdir it owns */
        T_EXPECT("the tree handed to the user", fchown(rootfd, u.uid, u.gid) == 0);
        struct probe p = { .rootfd = rootfd };
        snprintf(p.path, sizeof p.path, "%s/secret", top);
        int r = as_user(&u, -1, probe_fn, &p);
        T_EXPECT("as_user returns fn's result", r == 7);
        T_EXPECT("as the run user a root-only file cannot be read", p.read_rc == -EACCES);
        T_EXPECT("a file it creates belongs to the run user", p.create_rc == 0 && p.owner == u.uid);
        int fd = open(p.path, O_RDONLY | O_CLOEXEC);
        T_EXPECT("the agent's other threads keep root's identity", fd >= 0);
        if (fd >= 0)
                close(fd);
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) { return remove(p); }

int main(void) {
        if (!mkdtemp(top))
                return 1;
        chmod(top, 0755);
        build_tree();
        T_EXPECT("rel paths: plain ones only", beneath_rel_ok("a/b") && beneath_rel_ok("") && !beneath_rel_ok("a/") &&
                                                       !beneath_rel_ok("./a") && !beneath_rel_ok("a/..") &&
                                                       !beneath_rel_ok("/a"));
        test_resolution(false);
        test_resolution(true);
        test_as_user();
        close(rootfd);
        nftw(top, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        return t_summary();
}

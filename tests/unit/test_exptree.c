/* SPDX-License-Identifier: Apache-2.0 */
/* test_exptree.c — the workdir's creation: the parents' rule (sshd's StrictModes, for the run user), table-driven,
 * then exptree_open on a real tree (as root): links refused, parents the run user owns or may write refused, only a
 * workdir made now handed over. */
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>

#include "run/proc/exptree.h"
#include "util.h"
#include "test.h"

#define UID 54321
#define GID 54322
#define OTHER_GID 54399

static struct run_user user(void) {
        struct run_user u = { .uid = UID, .gid = GID, .switch_user = true, .ngroups = 2 };
        snprintf(u.name, sizeof u.name, "sbxuser");
        u.groups[0] = GID;
        u.groups[1] = 54323;
        return u;
}

static void test_rule(void) {
        struct run_user u = user(), root = user(), self = user();
        root.uid = 0;
        self.switch_user = false;
        static const struct {
                const char *name;
                uid_t uid;
                gid_t gid;
                mode_t mode;
                enum ancestor_verdict want;
        } cases[] = {
                { "root's 0755", 0, 0, S_IFDIR | 0755, ANC_OK },
                { "the user's own", UID, 0, S_IFDIR | 0755, ANC_OWNED },
                { "the user's own, read-only", UID, GID, S_IFDIR | 0500, ANC_OWNED },
                { "group-writable, the user's primary group", 0, GID, S_IFDIR | 0775, ANC_WRITABLE },
                { "group-writable, a supplementary group", 0, 54323, S_IFDIR | 0775, ANC_WRITABLE },
                { "group-writable, not the user's group", 0, OTHER_GID, S_IFDIR | 0775, ANC_OK },
                { "other-writable", 0, 0, S_IFDIR | 0757, ANC_WRITABLE },
                { "sticky and root's (/tmp)", 0, 0, S_IFDIR | 01777, ANC_OK },
                { "sticky but another user's", 1000, 0, S_IFDIR | 01777, ANC_WRITABLE },
                { "sticky, root's, group-writable for the user", 0, GID, S_IFDIR | 01775, ANC_OK },
                { "another user's 0755", 1000, 1000, S_IFDIR | 0755, ANC_OK },
                { "a file", 0, 0, S_IFREG | 0644, ANC_NOT_DIR },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct stat st = { .st_uid = cases[i].uid, .st_gid = cases[i].gid, .st_mode = cases[i].mode };
                enum ancestor_verdict v = exptree_ancestor(&st, &u);
                t_result(cases[i].name, v == cases[i].want, "got %s, want %s", exptree_ancestor_why(v),
                         exptree_ancestor_why(cases[i].want));
        }
        struct stat own = { .st_uid = UID, .st_mode = S_IFDIR | 0777 };
        T_EXPECT("run user root: nothing to guard against", exptree_ancestor(&own, &root) == ANC_OK);
        T_EXPECT("agent not root: nothing to guard against", exptree_ancestor(&own, &self) == ANC_OK);
        T_EXPECT("groups: primary", exptree_user_in_group(&u, GID));
        T_EXPECT("groups: supplementary", exptree_user_in_group(&u, 54323));
        T_EXPECT("groups: not", !exptree_user_in_group(&u, OTHER_GID));
}

static char top[] = "/tmp/mayfly-exptree-test-XXXXXX";

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f) {
        return remove(p) < 0 ? 0 : 0;
}

static void mk(const char *rel, mode_t mode, uid_t uid, gid_t gid) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", top, rel);
        if (mkdir(p, mode) < 0 || chmod(p, mode) < 0 || chown(p, uid, gid) < 0)
                perror(p);
}

/* exptree_open on top/rel: its rc, the error in err. */
static int open_at(const char *rel, char *err, size_t n, struct stat *ret_st) {
        struct run_user u = user();
        char p[600];
        snprintf(p, sizeof p, "%s/%s", top, rel);
        err[0] = 0;
        int fd = exptree_open(p, &u, err, n);
        if (fd >= 0) {
                if (ret_st)
                        fstat(fd, ret_st);
                close(fd);
                return 0;
        }
        return fd;
}

static void test_walk(void) {
        char err[1024], want[700];
        struct stat st, parent;
        int r = open_at("a/b/w", err, sizeof err, &st);
        T_EXPECT("made: the workdir and its parents", r == 0);
        T_EXPECT("made: the workdir is the run user's", st.st_uid == UID && st.st_gid == GID);
        char p[600];
        snprintf(p, sizeof p, "%s/a/b", top);
        T_EXPECT("made: its parents stay root's", stat(p, &parent) == 0 && parent.st_uid == 0 &&
                                                      (parent.st_mode & 07777) == 0755);
        T_EXPECT("again: the user's own workdir is taken as it is", open_at("a/b/w", err, sizeof err, NULL) == 0);

        mk("own", 0755, UID, GID);
        r = open_at("own/runs/w", err, sizeof err, NULL);
        snprintf(want, sizeof want, "the workdir's parent %s/own is owned by the run user", top);
        t_result("a parent the user owns: refused, named", r == -EPERM && strstr(err, want), "%d %s", r, err);
        snprintf(p, sizeof p, "%s/own/runs", top);
        T_EXPECT("... and nothing made below it", access(p, F_OK) != 0);

        mk("real", 0755, 0, 0);
        snprintf(p, sizeof p, "%s/link", top);
        if (symlink("real", p) < 0)
                perror(p);
        r = open_at("link/w", err, sizeof err, NULL);
        snprintf(want, sizeof want, "%s/link is a symbolic link", top);
        t_result("a link on the path: refused, named", r == -ELOOP && strstr(err, want), "%d %s", r, err);
        snprintf(p, sizeof p, "%s/real/w", top);
        T_EXPECT("... and nothing made through it", access(p, F_OK) != 0);
        r = open_at("link", err, sizeof err, NULL);
        T_EXPECT("a link as the workdir itself: refused", r == -ELOOP);
        r = open_at("a/b/w/below", err, sizeof err, NULL);
        T_EXPECT("a workdir below the user's own workdir: refused", r == -EPERM);

        mk("gw", 0775, 0, GID);
        r = open_at("gw/w", err, sizeof err, NULL);
        t_result("a parent writable by the user's group: refused", r == -EPERM && strstr(err, "writable by the run user"),
                 "%d %s", r, err);
        mk("gwo", 0775, 0, OTHER_GID);
        T_EXPECT("a parent writable by another group: fine", open_at("gwo/w", err, sizeof err, NULL) == 0);
        mk("ow", 0777, 0, 0);
        T_EXPECT("an other-writable parent: refused", open_at("ow/w", err, sizeof err, NULL) == -EPERM);
        mk("sticky", 01777, 0, 0);
        T_EXPECT("a sticky root-owned parent (/tmp): fine", open_at("sticky/x/w", err, sizeof err, NULL) == 0);
        mk("sticky/planted", 0755, UID, GID);
        T_EXPECT("... but not the user's directory planted in it", open_at("sticky/planted/w", err, sizeof err, NULL) ==
                                                                   -EPERM);

        mk("rootwd", 0755, 0, 0);
        r = open_at("rootwd", err, sizeof err, &st);
        t_result("an existing root-owned workdir: not handed over", r == -EPERM && strstr(err, "exists and is not"),
                 "%d %s", r, err);
        snprintf(p, sizeof p, "%s/rootwd", top);
        T_EXPECT("... its owner unchanged", stat(p, &st) == 0 && st.st_uid == 0);
        r = open_at("a/../a/b/w", err, sizeof err, NULL);
        T_EXPECT("'..' in the path: refused", r == -EINVAL);
}

int main(void) {
        test_rule();
        if (geteuid() == 0 && mkdtemp(top)) {
                chmod(top, 0755);
                test_walk();
                nftw(top, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        } else {
                printf("SKIP the walk: needs root\n");
        }
        return t_summary();
}

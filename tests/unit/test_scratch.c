/* SPDX-License-Identifier: Apache-2.0 */
/* test_scratch.c — the instance store's devices found in a fake sysfs tree (scratch.h): the model matched (padded
 * with spaces as sysfs gives it, or the MAYFLY_INSTANCE_STORE_MODEL override), another model (EBS) never taken, nor a
 * namespace that is mounted, the root device, swap, one with partitions or held by something else; the run user's
 * directory made, kept, or refused. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sys/wait.h>

#include "child.h"
#include "run/proc/scratch.h"
#include "test.h"
#include "util.h"

#define IS_MODEL "Amazon EC2 NVMe Instance Storage        \n"
#define EBS_MODEL "Amazon Elastic Block Store              \n"
#define QEMU_MODEL "QEMU NVMe Ctrl                          \n"

static char root[256];

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
        return remove(p);
}

static void put(const char *rel, const char *body) {
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", root, rel);
        if (mkdir_parents(p, 0755) < 0)
                abort();
        FILE *f = fopen(p, "w");
        if (!f)
                abort();
        fputs(body, f);
        fclose(f);
}

static void dir(const char *rel) {
        char p[1024];
        snprintf(p, sizeof p, "%s/%s/x", root, rel);
        mkdir_parents(p, 0755);
}

/* controller c (model m) with namespace ns at maj:min dev */
static void ctrl(const char *c, const char *m, const char *ns, const char *dev) {
        char p[256];
        snprintf(p, sizeof p, "sys/class/nvme/%s/model", c);
        put(p, m);
        snprintf(p, sizeof p, "sys/class/nvme/%s/serial", c);
        put(p, "s\n");
        if (ns) {
                snprintf(p, sizeof p, "sys/class/nvme/%s/%s", c, ns);
                dir(p);
                snprintf(p, sizeof p, "sys/class/block/%s/dev", ns);
                put(p, dev);
                snprintf(p, sizeof p, "sys/class/block/%s/size", ns);
                put(p, "2048\n");
                snprintf(p, sizeof p, "sys/class/block/%s/holders", ns);
                dir(p);
        }
}

static void tree(void) {
        ctrl("nvme0", IS_MODEL, "nvme0n1", "259:0\n");
        ctrl("nvme1", EBS_MODEL, "nvme1n1", "259:1\n");      /* an EBS volume, blank: never taken */
        ctrl("nvme2", IS_MODEL, "nvme2n1", "259:2\n");       /* mounted */
        ctrl("nvme3", IS_MODEL, "nvme3n1", "259:3\n");       /* with a partition */
        dir("sys/class/block/nvme3n1/nvme3n1p1");
        ctrl("nvme4", IS_MODEL, "nvme4n1", "259:4\n");       /* held by md127 (our array, or not) */
        dir("sys/class/block/nvme4n1/holders/md127");
        ctrl("nvme5", IS_MODEL, "nvme5n1", "259:5\n");       /* held by device-mapper */
        dir("sys/class/block/nvme5n1/holders/dm-0");
        ctrl("nvme6", IS_MODEL, NULL, NULL);                 /* native multipath: the head in the subsystem */
        dir("sys/class/nvme/nvme6/nvme6c6n1");
        dir("sys/class/nvme-subsystem/nvme-subsys6/nvme6");
        dir("sys/class/nvme-subsystem/nvme-subsys6/nvme6n1");
        put("sys/class/block/nvme6n1/dev", "259:6\n");
        put("sys/class/block/nvme6n1/size", "4096\n");
        ctrl("nvme7", IS_MODEL, "nvme7n1", "259:7\n");       /* swap */
        ctrl("nvme8", IS_MODEL, "nvme8n1", "259:8\n");       /* the root device */
        ctrl("nvme9", QEMU_MODEL, "nvme9n1", "259:9\n");     /* qemu's */
        ctrl("nvme10", IS_MODEL, "nvme10n1", "259:10\n");
        put("mountinfo", "22 1 259:8 / / rw,relatime shared:1 - ext4 /dev/nvme8n1 rw\n"
                         "30 22 259:2 / /data rw,relatime shared:9 - xfs /dev/nvme2n1 rw\n");
        put("swaps", "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/nvme7n1 partition 1024 0 -2\n");
}

static struct scratch_where where(const char *model, const char *holder) {
        static char sys[300], dev[300], mi[300], sw[300];
        snprintf(sys, sizeof sys, "%s/sys", root);
        snprintf(dev, sizeof dev, "/dev");
        snprintf(mi, sizeof mi, "%s/mountinfo", root);
        snprintf(sw, sizeof sw, "%s/swaps", root);
        return (struct scratch_where){ .sys = sys, .dev = dev, .mountinfo = mi, .swaps = sw, .model = model,
                                       .holder = holder };
}

static void names(const struct scratch_scan *s, char *out, size_t n) {
        out[0] = 0;
        for (size_t i = 0, w = 0; i < s->n; i++)
                w += (size_t)snprintf(out + w, n - w, "%s%s", i ? " " : "", s->dev[i].name);
}

static void test_find(void) {
        struct scratch_scan s;
        char got[512];
        struct scratch_where w = where(SCRATCH_MODEL_DEFAULT, NULL);
        T_EXPECT("find: runs", scratch_find(&w, &s) == 0);
        names(&s, got, sizeof got);
        T_EXPECT_STR("find: the instance store's free namespaces, multipath head included, in order", got,
                     "nvme0n1 nvme6n1 nvme10n1");
        T_EXPECT("find: the EBS and qemu controllers counted as other", s.other == 2);
        T_EXPECT("find: path and size", !strcmp(s.dev[0].path, "/dev/nvme0n1") && s.dev[0].bytes == 2048 * 512 &&
                                        s.dev[1].bytes == 4096 * 512);
        T_EXPECT_STR("find: what was left alone, and why", s.skipped,
                     "nvme2n1 (mounted at /data), nvme3n1 (holds partitions), nvme4n1 (held by md127), "
                     "nvme5n1 (held by dm-0), nvme7n1 (used as swap), nvme8n1 (mounted at /)");

        w = where(SCRATCH_MODEL_DEFAULT, "md127");
        scratch_find(&w, &s);
        names(&s, got, sizeof got);
        T_EXPECT_STR("find: a member of our own array (its holder) is taken", got, "nvme0n1 nvme4n1 nvme6n1 nvme10n1");

        w = where("Amazon Elastic Block Store", NULL);
        scratch_find(&w, &s);
        names(&s, got, sizeof got);
        T_EXPECT_STR("find: only what the model says (here EBS's)", got, "nvme1n1");

        setenv(SCRATCH_MODEL_ENV, "QEMU NVMe Ctrl", 1);
        w = where(scratch_model(), NULL);
        scratch_find(&w, &s);
        names(&s, got, sizeof got);
        T_EXPECT_STR("find: MAYFLY_INSTANCE_STORE_MODEL overrides the model", got, "nvme9n1");
        T_EXPECT("find: ... and the instance store's controllers are then other", s.other == 10);
        unsetenv(SCRATCH_MODEL_ENV);
        T_EXPECT_STR("model: the default", scratch_model(), "Amazon EC2 NVMe Instance Storage");

        char empty[300];
        snprintf(empty, sizeof empty, "%s/nothing", root);
        w.sys = empty;
        T_EXPECT("find: no NVMe at all is no device, not an error", scratch_find(&w, &s) == 0 && s.n == 0);
}

static void test_pure(void) {
        T_EXPECT("model: sysfs padding", scratch_model_is(IS_MODEL, SCRATCH_MODEL_DEFAULT));
        T_EXPECT("model: padded setting", scratch_model_is("QEMU NVMe Ctrl\n", "QEMU NVMe Ctrl  "));
        T_EXPECT("model: EBS is not", !scratch_model_is(EBS_MODEL, SCRATCH_MODEL_DEFAULT));
        T_EXPECT("model: a prefix is not", !scratch_model_is("Amazon EC2 NVMe Instance", SCRATCH_MODEL_DEFAULT));
        T_EXPECT("model: empty is not", !scratch_model_is("   \n", ""));
        char t[32], l[96];
        scratch_parse_blkid("DEVNAME=/dev/md127\nLABEL=mayfly-scratch\nUUID=x\nBLOCK_SIZE=4096\nTYPE=ext4\n", t,
                            sizeof t, l, sizeof l);
        T_EXPECT("blkid: type and label", !strcmp(t, "ext4") && !strcmp(l, "mayfly-scratch"));
        scratch_parse_blkid("", t, sizeof t, l, sizeof l);
        T_EXPECT("blkid: nothing", !t[0] && !l[0]);
        T_EXPECT("ours: our ext4", scratch_sig_ours("ext4", "mayfly-scratch"));
        T_EXPECT("ours: not another ext4", !scratch_sig_ours("ext4", "data"));
        T_EXPECT("ours: not our label on xfs", !scratch_sig_ours("xfs", "mayfly-scratch"));
        T_EXPECT("ours: our array's member", scratch_sig_ours("linux_raid_member", "any:mayfly-scratch") &&
                                             scratch_sig_ours("linux_raid_member", "mayfly-scratch"));
        T_EXPECT("ours: not another array's", !scratch_sig_ours("linux_raid_member", "host:data"));
        char src[128];
        char mi[300];
        snprintf(mi, sizeof mi, "%s/mi2", root);
        put("mi2", "22 1 259:8 / / rw - ext4 /dev/nvme8n1 rw\n40 22 9:127 / /mnt/mayfly-scratch rw,nosuid - ext4 "
                   "/dev/md127 rw\n");
        T_EXPECT("mounted: found, with its source", scratch_mounted(mi, src, sizeof src) && !strcmp(src, "/dev/md127"));
        T_EXPECT("mounted: not", !scratch_mounted(where("", NULL).mountinfo, src, sizeof src));
}

static void test_user_dir(void) {
        char base[300], err[512];
        snprintf(base, sizeof base, "%s/mnt", root);
        dir("mnt");
        int bfd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        bool rootp = geteuid() == 0;
        uid_t uid = rootp ? 4242 : geteuid();
        gid_t gid = rootp ? 4242 : getegid();
        struct stat st;
        int fd = scratch_user_dir(bfd, "alice", uid, gid, err, sizeof err);
        T_EXPECT("user dir: made", fd >= 0 && fstat(fd, &st) == 0 && st.st_uid == uid && (st.st_mode & 0777) == 0700);
        if (fd >= 0)
                close(fd);
        fd = scratch_user_dir(bfd, "alice", uid, gid, err, sizeof err);
        T_EXPECT("user dir: kept (a restart)", fd >= 0);
        if (fd >= 0)
                close(fd);
        if (symlinkat("/etc", bfd, "bob") < 0)
                abort();
        fd = scratch_user_dir(bfd, "bob", uid, gid, err, sizeof err);
        T_EXPECT("user dir: a link refused", fd < 0 && strstr(err, "refused"));
        if (rootp) {
                mkdirat(bfd, "carol", 0755);
                if (fchownat(bfd, "carol", 1234, 1234, 0) < 0)
                        abort();
                fd = scratch_user_dir(bfd, "carol", uid, gid, err, sizeof err);
                T_EXPECT("user dir: another user's refused", fd == -EPERM && strstr(err, "uid 1234"));
                mkdirat(bfd, "dave", 0755);
                fd = scratch_user_dir(bfd, "dave", uid, gid, err, sizeof err);
                T_EXPECT("user dir: root's and empty is given", fd >= 0 && fstat(fd, &st) == 0 && st.st_uid == uid);
                if (fd >= 0)
                        close(fd);
                mkdirat(bfd, "erin", 0755);
                put("mnt/erin/secret", "x");
                fd = scratch_user_dir(bfd, "erin", uid, gid, err, sizeof err);
                T_EXPECT("user dir: root's with files in it refused", fd == -EPERM);
        }
        fd = scratch_user_dir(bfd, "..", uid, gid, err, sizeof err);
        T_EXPECT("user dir: .. refused", fd == -EINVAL);
        close(bfd);
}

static void test_record(void) {
        struct scratch_setup a = { .rc = 0, .res = { .device = "/dev/md/mayfly-scratch", .what = "reused",
                                                     .bytes = 1ULL << 40 } };
        a.scan.n = 2;
        strcpy(a.scan.dev[0].name, "nvme1n1");
        strcpy(a.scan.dev[1].name, "nvme2n1");
        a.scan.other = 1;
        strcpy(a.scan.skipped, "nvme3n1 (mounted at /data)");
        char text[SCRATCH_RECORD_MAX];
        struct scratch_setup b;
        T_EXPECT("record: round trip", scratch_record_format(&a, text, sizeof text) == 0 &&
                                       scratch_record_parse(text, &b) == 0 && b.rc == 0 &&
                                       !strcmp(b.res.what, "reused") && b.res.bytes == 1ULL << 40 && b.scan.n == 2 &&
                                       !strcmp(b.scan.dev[1].name, "nvme2n1") && b.scan.other == 1 &&
                                       !strcmp(b.scan.skipped, a.scan.skipped) && !strcmp(b.res.device, a.res.device));
        struct scratch_setup c = { .rc = -ENODEV, .none = true };
        T_EXPECT("record: none", scratch_record_format(&c, text, sizeof text) == 0 &&
                                 scratch_record_parse(text, &b) == 0 && b.none && b.rc == -ENODEV);
        T_EXPECT("record: not one", scratch_record_parse("hello\n", &b) == -EINVAL &&
                                    scratch_record_parse("rc=0\nwhat=eaten\n", &b) == -EINVAL);
}

static void test_child_run(void) {
        char out[64], err[64];
        int st = -1;
        char *const a[] = { "sh", "-c", "echo out; echo first >&2; echo second >&2; exit 3", NULL };
        int r = child_run(a, 10, out, sizeof out, err, sizeof err, &st);
        T_EXPECT("child_run: status, stdout, stderr on one line",
                 r == 0 && WEXITSTATUS(st) == 3 && !strcmp(out, "out\n") && !strcmp(err, "first; second"));
        char *const b[] = { "sleep", "5", NULL };
        T_EXPECT("child_run: killed at its time", child_run(b, 0.2, NULL, 0, NULL, 0, &st) == -ETIMEDOUT);
        char *const c[] = { "mayfly-no-such-program", NULL };
        T_EXPECT("child_run: not installed", child_run(c, 5, NULL, 0, err, sizeof err, &st) == -ENOENT);
}

int main(void) {
        snprintf(root, sizeof root, "/tmp/mayfly-test-scratch-XXXXXX");
        if (!mkdtemp(root))
                return 1;
        tree();
        test_pure();
        test_find();
        test_user_dir();
        test_record();
        test_child_run();
        nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        return t_summary();
}

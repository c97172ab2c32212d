/* SPDX-License-Identifier: Apache-2.0 */
/* scratch.h — the instance store as scratch space ("scratch": "instance-store"): the instance's NVMe instance-store
 * namespaces found through sysfs (by their controller's model), one ext4 file system across them (one device: on it;
 * several: on an mdadm RAID 0 of them), mounted at SCRATCH_MOUNT, reused when it is already there (a restart, a
 * reboot); and the run user's directory on it. A device with another model (an EBS volume), one that is mounted,
 * used as swap, holds partitions, is held by something else or holds a file system that is not mayfly's is never
 * touched.
 *
 * Why mdadm and not LVM striping: one package (mdadm) and one command each way (--create, --assemble), no daemon, no
 * volume-group metadata to name and clean up; its superblock carries the array's name (--name, --homehost=any), so
 * udev's incremental assembly (or --assemble here) brings the same array back as /dev/md/mayfly-scratch after a
 * reboot; it is what AWS documents for instance-store RAID 0. LVM would need lvm2 and device-mapper, three commands
 * to make (pvcreate, vgcreate, lvcreate -i N) and a volume group whose name could meet an AMI's own.
 * Why ext4 and not xfs: e2fsprogs is on every Debian/Ubuntu/Amazon Linux image (xfsprogs is not on Debian's), and
 * with lazy inode-table and journal initialisation and no discard mkfs.ext4 takes seconds on terabytes. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SCRATCH_MODEL_DEFAULT "Amazon EC2 NVMe Instance Storage"
#define SCRATCH_MODEL_ENV "MAYFLY_INSTANCE_STORE_MODEL"
#define SCRATCH_MOUNT "/mnt/mayfly-scratch"
#define SCRATCH_LABEL "mayfly-scratch"      /* the ext4 label, and the md array's name */
#define SCRATCH_MD "/dev/md/" SCRATCH_LABEL
#define SCRATCH_MAX_DEVS 32
#define SCRATCH_CMD_TIMEOUT 600             /* s for one mdadm, blkid or mkfs.ext4 */

struct scratch_dev {
        char name[32];          /* nvme1n1 */
        char path[96];          /* /dev/nvme1n1 */
        uint64_t bytes;
        char type[32], label[96]; /* what blkid found on it ("" nothing): scratch_probe */
};

struct scratch_scan {
        struct scratch_dev dev[SCRATCH_MAX_DEVS];
        size_t n;
        size_t other;           /* NVMe controllers of another model (EBS volumes): never looked into */
        char skipped[700];      /* "nvme2n1 (mounted at /data), …": matching namespaces left alone, "" none */
};

/* Where to look; a test points them at a fake tree. */
struct scratch_where {
        const char *sys;        /* "/sys" */
        const char *dev;        /* "/dev" */
        const char *mountinfo;  /* "/proc/self/mountinfo" */
        const char *swaps;      /* "/proc/swaps" */
        const char *model;      /* the model to match (trailing spaces ignored on both sides) */
        const char *holder;     /* a holder that does not make a device busy: our own array ("md127"), or NULL */
};

/* The model of the instance store's controllers: $MAYFLY_INSTANCE_STORE_MODEL, else SCRATCH_MODEL_DEFAULT. */
const char *scratch_model(void);
/* The real roots and model; holder: the md node SCRATCH_MD points at, when it exists (into holder[holderlen]). */
void scratch_where_default(struct scratch_where *w, char *holder, size_t holderlen);
/* Pure: whether a model as sysfs gives it (space padded, a newline) is want. */
bool scratch_model_is(const char *read, const char *want);
/* Pure: TYPE and LABEL out of `blkid -p -o export`'s output ("" when absent). */
void scratch_parse_blkid(const char *out, char *type, size_t tlen, char *label, size_t llen);
/* Pure: whether a device's signature (blkid's TYPE and LABEL) is mayfly's: its file system or a member of its array. */
bool scratch_sig_ours(const char *type, const char *label);

/* The instance store's namespaces: under <sys>/class/nvme, controllers whose model is w->model, their namespaces
 * (directly, or through their NVMe subsystem), sorted by name. 0 (no NVMe at all: 0 devices) or -errno (-E2BIG:
 * more than SCRATCH_MAX_DEVS). Reads files only. */
int scratch_find(const struct scratch_where *w, struct scratch_scan *ret);
/* Each device's signature (blkid -p); one with a signature that is not mayfly's is dropped into skipped. 0 or
 * -errno with err. Runs blkid. */
int scratch_probe(struct scratch_scan *s, char *err, size_t errlen);

struct scratch_result {
        char device[128];       /* what is mounted: /dev/nvme1n1, /dev/md/mayfly-scratch */
        const char *what;       /* "formatted", "reused", "already mounted" */
        uint64_t bytes;         /* the file system's size */
};
/* Whether SCRATCH_MOUNT is a mount point in mountinfo (its source into src, may be NULL). */
bool scratch_mounted(const char *mountinfo, char *src, size_t srclen);
/* The file system across s's devices (found, assembled, or made) mounted at SCRATCH_MOUNT, nosuid and nodev;
 * already mounted there: nothing done. Runs mdadm, blkid, mkfs.ext4 (each bounded by SCRATCH_CMD_TIMEOUT) and
 * mount(2). 0, or -errno with err saying on one line what failed. */
int scratch_mount(const struct scratch_scan *s, const char *mountinfo, struct scratch_result *ret, char *err,
                  size_t errlen);
/* <basefd>/<name> for the run user: made 0700 and given to uid:gid when missing (or root's and empty), kept when it
 * is uid's already; a link, a non-directory or another owner's is refused. Its fd (O_DIRECTORY, O_CLOEXEC), or
 * -errno with err. By root, beneath a directory only root writes. */
int scratch_user_dir(int basefd, const char *name, uid_t uid, gid_t gid, char *err, size_t errlen);

/* ---------- the whole set-up, and its record ---------- */

/* Where `mayfly scratch` (mayfly-scratch.service, before mayfly.service and outside its sandbox: it needs
 * CAP_SYS_ADMIN, the block devices and a writable /sys, which the agent's unit does not give) leaves what it did, for
 * the agent. */
#define SCRATCH_RECORD "/run/mayfly-scratch"
#define SCRATCH_RECORD_MAX 8192

struct scratch_setup {
        struct scratch_scan scan;
        struct scratch_result res;
        bool none;              /* no instance store to use (scan.skipped and scan.other say what was seen) */
        int rc;                 /* 0 mounted, else -errno (err) */
        char err[1024];
};
/* The instance store found mounted at SCRATCH_MOUNT, or found, probed and mounted there (the real roots). */
void scratch_setup(struct scratch_setup *ret);
/* Pure: the record's text (key=value lines) of a set-up, into out. -ENOBUFS when it does not fit. */
int scratch_record_format(const struct scratch_setup *s, char *out, size_t outlen);
/* Pure: a record's text back into *ret (device names only in scan.dev). -EINVAL when it is not one. */
int scratch_record_parse(const char *text, struct scratch_setup *ret);

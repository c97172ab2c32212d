/* SPDX-License-Identifier: Apache-2.0 */
/* xscratch.c — the scratch directory: the instance store, or the state directory's disk (xscratch.h). */
#include "run/drive/xscratch.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "run/proc/scratch.h"

/* What `mayfly scratch` (mayfly-scratch.service, before the agent) did, from its record: 0; -ENOENT when there is
 * none (the agent was not started by the unit), or it says the store is mounted but this namespace does not see it. */
static int read_record(struct scratch_setup *ss) {
        _cleanup_close_ int fd = open(SCRATCH_RECORD, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0)
                return -ENOENT;
        char text[SCRATCH_RECORD_MAX];
        ssize_t n = read(fd, text, sizeof text - 1);
        if (n <= 0)
                return -ENOENT;
        text[n] = 0;
        if (scratch_record_parse(text, ss) < 0)
                return -ENOENT;
        if (ss->rc == 0 && !scratch_mounted("/proc/self/mountinfo", NULL, 0))
                return -ENOENT;
        return 0;
}

/* On a worker (io): what mayfly-scratch.service did; without it (`mayfly run` started by hand, as root), the
 * set-up itself. */
static int mount_store(struct run *R, void *arg) {
        struct scratch_setup *ss = arg;
        if (read_record(ss) == 0)
                return ss->rc;
        scratch_setup(ss);
        return ss->rc;
}

/* The run user's directory beneath base (a directory only root writes), into R->scratchfd and R->scratch_dir. */
static int user_dir(struct run *R, const char *base) {
        char err[512];
        _cleanup_close_ int bfd = open(base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (bfd < 0)
                return failed(R, "scratch: cannot open %s: %s", base, strerror(errno));
        struct stat st;
        if (fstat(bfd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 022))
                return failed(R, "scratch: %s must be the agent's and writable by it alone (owner uid %u, mode %o)",
                              base, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
        int fd = scratch_user_dir(bfd, R->user.name, R->user.uid, R->user.gid, err, sizeof err);
        if (fd < 0)
                return failed(R, "scratch: %s/%s", base, err);
        if (pathf(R->scratch_dir, sizeof R->scratch_dir, "%s/%s", base, R->user.name) < 0) {
                close(fd);
                return failed(R, "scratch: %s/%s: path too long", base, R->user.name);
        }
        R->scratchfd = fd;
        return -1;
}

/* prefer-instance-store on an instance without one: <state dir>/scratch, on the disk the agent's state is on. */
static int fallback_dir(struct run *R, const char *why) {
        char base[2100];
        if (pathf(base, sizeof base, "%s/scratch", R->state_dir) < 0)
                return failed(R, "scratch: %s/scratch: path too long", R->state_dir);
        if (mkdir(base, 0711) == 0)
                chmod(base, 0711); /* the unit's UMask=0027 would leave the run user no way through */
        else if (errno != EEXIST)
                return failed(R, "scratch: cannot make %s: %s", base, strerror(errno));
        if (user_dir(R, base) == EV_FAILED)
                return EV_FAILED;
        log_info("scratch: %s; prefer-instance-store: MAYFLY_SCRATCH=%s on the state directory's disk", why,
                 R->scratch_dir);
        return -1;
}

int prepare_scratch(struct run *R) {
        if (R->job.scratch == JOB_SCRATCH_NONE || R->scratchfd >= 0)
                return -1;
        struct scratch_setup *sc = calloc(1, sizeof *sc);
        if (!sc)
                return failed(R, "scratch: out of memory");
        _cleanup_free_ struct scratch_setup *owned = sc;
        waiter_status("finding the instance store%s", "");
        int r = io(R, mount_store, sc);
        char other[96] = "";
        if (sc->scan.other)
                snprintf(other, sizeof other, "; %zu NVMe device%s of another model (EBS) not touched", sc->scan.other,
                         sc->scan.other == 1 ? "" : "s");
        if (sc->none) {
                char why[1200];
                snprintf(why, sizeof why, "no NVMe instance store on this instance (%s; devices of model '%s'%s%s%s)",
                         R->inst.type[0] ? R->inst.type : "instance type unknown", scratch_model(),
                         sc->scan.skipped[0] ? ", left alone: " : "", sc->scan.skipped, other);
                if (R->job.scratch == JOB_SCRATCH_PREFER)
                        return fallback_dir(R, why);
                return failed(R, "scratch: %s: use \"scratch\": \"prefer-instance-store\" to fall back to the disk, or "
                              "an instance type with instance store (g4dn, g5, p3dn, p4d, p5)", why);
        }
        if (r < 0)
                return failed(R, "scratch: %s", sc->err[0] ? sc->err : strerror(-r));
        if (user_dir(R, SCRATCH_MOUNT) == EV_FAILED)
                return EV_FAILED;
        char size[32], devs[400] = "";
        fmt_bytes(sc->res.bytes, size);
        for (size_t i = 0, n = 0; i < sc->scan.n && n + 1 < sizeof devs; i++)
                n += (size_t)snprintf(devs + n, sizeof devs - n, "%s%s", i ? " " : "", sc->scan.dev[i].name);
        log_info("scratch: %s ext4 on %s (%s%s), %s at %s%s%s%s; MAYFLY_SCRATCH=%s", size, sc->res.device,
                 sc->scan.n ? devs : "found mounted", sc->scan.n > 1 ? ", RAID 0" : "", sc->res.what, SCRATCH_MOUNT,
                 sc->scan.skipped[0] ? "; left alone: " : "", sc->scan.skipped, other, R->scratch_dir);
        return -1;
}

bool scratch_env(const struct run *R, char *out, size_t size) {
        if (R->scratchfd < 0 || !R->scratch_dir[0])
                return false;
        snprintf(out, size, "MAYFLY_SCRATCH=%s", R->scratch_dir);
        return true;
}

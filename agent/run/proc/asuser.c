/* SPDX-License-Identifier: Apache-2.0 */
/* asuser.c — a thread with the run user's filesystem identity: setfsuid/setfsgid and setgroups are per thread in
 * the kernel; the raw system calls are used because libc's setgroups changes every thread of the process. */
#include "run/proc/asuser.h"

#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "util.h"

struct as_user_call {
        const struct run_user *u;
        int cwdfd;
        int (*fn)(void *);
        void *arg;
        int rc;
};

/* CAP_SYS_RESOURCE out of this thread's effective set (capset is per thread; the raw call, as libcap's would
 * broadcast): with it, ext4 hands the thread root's reserved blocks and lets it past quotas whatever its fsuid. */
static int drop_sys_resource(void) {
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
        struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
        if (syscall(SYS_capget, &h, d) < 0)
                return -errno;
        d[CAP_TO_INDEX(CAP_SYS_RESOURCE)].effective &= ~CAP_TO_MASK(CAP_SYS_RESOURCE);
        return syscall(SYS_capset, &h, d) < 0 ? -errno : 0;
}

int as_user_take(const struct run_user *u) {
        if (!u || !u->switch_user)
                return 0;
        if (syscall(SYS_setgroups, (size_t)u->ngroups, u->groups) < 0)
                return -errno;
        syscall(SYS_setfsgid, u->gid);
        if ((gid_t)syscall(SYS_setfsgid, (gid_t)-1) != u->gid)
                return -EPERM;
        syscall(SYS_setfsuid, u->uid);
        if ((uid_t)syscall(SYS_setfsuid, (uid_t)-1) != u->uid)
                return -EPERM;
        return u->uid == 0 ? 0 : drop_sys_resource();
}

static void *as_user_main(void *ud) {
        struct as_user_call *c = ud;
        /* a working directory and umask of its own, so fchdir here moves no other thread */
        if (unshare(CLONE_FS) < 0) {
                c->rc = -errno;
                return NULL;
        }
        umask(022);
        if (c->cwdfd >= 0 && fchdir(c->cwdfd) < 0) {
                c->rc = -errno;
                return NULL;
        }
        if (c->u && c->u->switch_user) {
                int r = as_user_take(c->u);
                if (r < 0) {
                        c->rc = r;
                        return NULL;
                }
        }
        c->rc = c->fn(c->arg);
        return NULL;
}

int as_user(const struct run_user *u, int cwdfd, int (*fn)(void *arg), void *arg) {
        struct as_user_call c = { .u = u, .cwdfd = cwdfd, .fn = fn, .arg = arg };
        pthread_t th;
        int r = pthread_create(&th, NULL, as_user_main, &c);
        if (r != 0)
                return -r;
        pthread_join(th, NULL);
        return c.rc;
}

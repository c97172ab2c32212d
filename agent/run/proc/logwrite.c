/* SPDX-License-Identifier: Apache-2.0 */
/* logwrite.c — the experiment's logs written by a thread with the run user's identity; their head released past
 * log_max (logwrite.h says why a thread). */
#include "run/proc/logwrite.h"

#include <fcntl.h>
#include <linux/falloc.h>

#include "run/proc/asuser.h"
#include "util.h"

static ssize_t write_all(int fd, const char *buf, size_t n) {
        size_t done = 0;
        while (done < n) {
                ssize_t w = write(fd, buf + done, n - done);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0) {
                        if (w == 0)
                                errno = EIO;
                        return done ? (ssize_t)done : -1;
                }
                done += (size_t)w;
        }
        return (ssize_t)done;
}

struct start {
        struct logwriter *L;
        const struct run_user *u;
};

static void *writer_main(void *ud) {
        struct start *st = ud;
        struct logwriter *L = st->L;
        int r = as_user_take(st->u);
        pthread_mutex_lock(&L->mu);
        L->start_rc = r;
        L->ready = true;
        pthread_cond_broadcast(&L->cv);
        while (r == 0) {
                while (!L->busy && !L->quit)
                        pthread_cond_wait(&L->cv, &L->mu);
                if (L->quit)
                        break;
                int fd = L->fd;
                const char *buf = L->buf;
                size_t n = L->n;
                pthread_mutex_unlock(&L->mu);
                ssize_t w = write_all(fd, buf, n);
                int e = errno;
                pthread_mutex_lock(&L->mu);
                L->rc = w;
                L->err = e;
                L->busy = false;
                pthread_cond_broadcast(&L->cv);
        }
        pthread_mutex_unlock(&L->mu);
        return NULL;
}

int logw_start(struct logwriter *L, const struct run_user *u) {
        *L = (struct logwriter){ .fd = -1 };
        if (!u || !u->switch_user)
                return 0;
        pthread_mutex_init(&L->mu, NULL);
        pthread_cond_init(&L->cv, NULL);
        struct start st = { .L = L, .u = u };
        int r = pthread_create(&L->th, NULL, writer_main, &st);
        if (r != 0) {
                pthread_cond_destroy(&L->cv);
                pthread_mutex_destroy(&L->mu);
                return -r;
        }
        pthread_mutex_lock(&L->mu);
        while (!L->ready)
                pthread_cond_wait(&L->cv, &L->mu);
        r = L->start_rc;
        pthread_mutex_unlock(&L->mu);
        if (r < 0) {
                pthread_join(L->th, NULL);
                pthread_cond_destroy(&L->cv);
                pthread_mutex_destroy(&L->mu);
                return r;
        }
        L->on = true;
        return 0;
}

ssize_t logw_write(struct logwriter *L, int fd, const void *buf, size_t n) {
        if (!L->on)
                return write_all(fd, buf, n);
        pthread_mutex_lock(&L->mu);
        L->fd = fd;
        L->buf = buf;
        L->n = n;
        L->busy = true;
        pthread_cond_broadcast(&L->cv);
        while (L->busy)
                pthread_cond_wait(&L->cv, &L->mu);
        ssize_t rc = L->rc;
        int e = L->err;
        pthread_mutex_unlock(&L->mu);
        if (rc < 0 || (size_t)rc < n)
                errno = e;
        return rc;
}

void logw_stop(struct logwriter *L) {
        if (!L->on)
                return;
        pthread_mutex_lock(&L->mu);
        L->quit = true;
        pthread_cond_broadcast(&L->cv);
        pthread_mutex_unlock(&L->mu);
        pthread_join(L->th, NULL);
        pthread_cond_destroy(&L->cv);
        pthread_mutex_destroy(&L->mu);
        L->on = false;
}

uint64_t log_release_upto(uint64_t size, uint64_t max) {
        if (!max || size <= max)
                return 0;
        return (size - max) / LOG_RELEASE_ALIGN * LOG_RELEASE_ALIGN;
}

int log_release(int fd, uint64_t from, uint64_t to) {
        if (to <= from)
                return 0;
        if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)from, (off_t)(to - from)) < 0)
                return -errno;
        return 0;
}

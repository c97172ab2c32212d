/* SPDX-License-Identifier: Apache-2.0 */
/* log.c — stderr for the journal, plus a file copy. */
#include "log.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>

#include "util.h"

static int log_fd = -1;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void log_open_file(const char *path) {
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        pthread_mutex_lock(&log_lock);
        if (log_fd >= 0)
                close(log_fd);
        log_fd = fd;
        pthread_mutex_unlock(&log_lock);
}

void log_close_file(void) {
        pthread_mutex_lock(&log_lock);
        if (log_fd >= 0)
                close(log_fd);
        log_fd = -1;
        pthread_mutex_unlock(&log_lock);
}

void log_msg(int prio, const char *fmt, ...) {
        char line[2048];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        for (char *p = line; *p; p++)
                if (*p == '\n' || *p == '\r')
                        *p = ' ';
        bool journal = getenv("JOURNAL_STREAM") != NULL;
        pthread_mutex_lock(&log_lock);
        if (journal)
                fprintf(stderr, "<%d>%s\n", prio, line);
        else
                fprintf(stderr, "mayfly: %s\n", line);
        if (log_fd >= 0) {
                char ts[32], out[2200];
                struct timespec now;
                clock_gettime(CLOCK_REALTIME, &now);
                struct tm tm;
                gmtime_r(&now.tv_sec, &tm);
                strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
                int n = snprintf(out, sizeof out, "%s.%03ldZ %s\n", ts, now.tv_nsec / 1000000, line);
                if (n > 0) {
                        ssize_t w = write(log_fd, out, (size_t)MIN(n, (int)sizeof out - 1));
                        (void)w;
                }
        }
        pthread_mutex_unlock(&log_lock);
}

void log_error(const char *fmt, ...) {
        char line[2048];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        log_msg(LOG_ERR, "%s", line);
}

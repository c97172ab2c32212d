/* SPDX-License-Identifier: Apache-2.0 */
/* sdshim.c — the static build's stand-in for the four libsystemd calls mayfly makes (run.c): sd_notify and
 * sd_notifyf over the datagram protocol sd_notify(3) documents as stable, sd_watchdog_enabled from
 * $WATCHDOG_USEC/$WATCHDOG_PID, and sd_journal_send over journald's native protocol. Errors are -errno, as in
 * libsystemd; the callers ignore them. Declarations: packaging/static/include/systemd/. */
#ifdef MAYFLY_STATIC
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <wchar.h>

#define JOURNAL_SOCKET "/run/systemd/journal/socket"
#define JOURNAL_MAX_FIELDS 64

/* ---- sd_notify ---- */

/* $NOTIFY_SOCKET as an address: a path, or an abstract name written with a leading '@'. */
static int notify_address(const char *e, struct sockaddr_un *sa, socklen_t *ret_len) {
        size_t n = strlen(e);
        bool abstract = e[0] == '@';
        if ((e[0] != '/' && !abstract) || n < 2 || n + !abstract > sizeof sa->sun_path)
                return -EINVAL;
        *sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
        memcpy(sa->sun_path, e, n);
        if (abstract)
                sa->sun_path[0] = 0;
        *ret_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + !abstract);
        return 0;
}

static int notify_send(const char *state) {
        if (!state)
                return -EINVAL;
        const char *e = getenv("NOTIFY_SOCKET");
        if (!e)
                return 0;
        struct sockaddr_un sa;
        socklen_t salen;
        int r = notify_address(e, &sa, &salen);
        if (r < 0)
                return r;
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        r = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0 ? -errno : 1;
        close(fd);
        return r;
}

int sd_notify(int unset_environment, const char *state) {
        int r = notify_send(state);
        if (unset_environment)
                unsetenv("NOTIFY_SOCKET");
        return r;
}

int sd_notifyf(int unset_environment, const char *format, ...) {
        if (!format)
                return sd_notify(unset_environment, NULL);
        char *s = NULL;
        va_list ap;
        va_start(ap, format);
        int k = vasprintf(&s, format, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        int r = sd_notify(unset_environment, s);
        free(s);
        return r;
}

/* ---- sd_watchdog_enabled ---- */

static int parse_u64(const char *s, uint64_t *ret) {
        if (!isdigit((unsigned char)*s))
                return -EINVAL;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno)
                return -errno;
        if (*end)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int watchdog_usec(uint64_t *usec) {
        uint64_t u, pid;
        const char *s = getenv("WATCHDOG_USEC");
        if (!s)
                return 0;
        if (parse_u64(s, &u) < 0 || u == 0 || u == UINT64_MAX)
                return -EINVAL;
        const char *p = getenv("WATCHDOG_PID");
        if (p) {
                if (parse_u64(p, &pid) < 0 || pid == 0 || pid > INT32_MAX)
                        return -EINVAL;
                if ((pid_t)pid != getpid())
                        return 0;
        }
        if (usec)
                *usec = u;
        return 1;
}

int sd_watchdog_enabled(int unset_environment, uint64_t *usec) {
        int r = watchdog_usec(usec);
        if (unset_environment) {
                unsetenv("WATCHDOG_USEC");
                unsetenv("WATCHDOG_PID");
        }
        return r;
}

/* ---- sd_journal_send ---- */

enum arg_size { ARG_INT, ARG_LONG, ARG_LLONG, ARG_SIZE, ARG_INTMAX, ARG_PTRDIFF, ARG_LDOUBLE };

static void skip_conversion(char conv, enum arg_size sz, va_list *ap) {
        switch (conv) {
        case 'd': case 'i': case 'o': case 'u': case 'x': case 'X':
                switch (sz) {
                case ARG_LONG: (void)va_arg(*ap, long); break;
                case ARG_LLONG: case ARG_LDOUBLE: (void)va_arg(*ap, long long); break;
                case ARG_SIZE: (void)va_arg(*ap, size_t); break;
                case ARG_INTMAX: (void)va_arg(*ap, intmax_t); break;
                case ARG_PTRDIFF: (void)va_arg(*ap, ptrdiff_t); break;
                default: (void)va_arg(*ap, int); break;
                }
                break;
        case 'c': case 'C':
                (void)va_arg(*ap, wint_t);
                break;
        case 'e': case 'E': case 'f': case 'F': case 'g': case 'G': case 'a': case 'A':
                if (sz == ARG_LDOUBLE)
                        (void)va_arg(*ap, long double);
                else
                        (void)va_arg(*ap, double);
                break;
        case 's': case 'S': case 'p': case 'n':
                (void)va_arg(*ap, void *);
                break;
        default: /* %m and unknown conversions take nothing */
                break;
        }
}

/* Consumes from *ap the arguments printf takes for fmt (vasprintf works on a copy; positional arguments are not
 * supported, as in libsystemd). */
static void skip_format_args(const char *fmt, va_list *ap) {
        const char *p = fmt;
        while ((p = strchr(p, '%'))) {
                p++;
                if (*p == '%') {
                        p++;
                        continue;
                }
                p += strspn(p, "#0- +'I");
                if (*p == '*') {
                        (void)va_arg(*ap, int);
                        p++;
                } else
                        p += strspn(p, "0123456789");
                if (*p == '.') {
                        p++;
                        if (*p == '*') {
                                (void)va_arg(*ap, int);
                                p++;
                        } else
                                p += strspn(p, "0123456789");
                }
                enum arg_size sz = ARG_INT;
                for (bool more = true; more && *p; ) {
                        switch (*p) {
                        case 'h': p++; break;
                        case 'l': sz = sz == ARG_LONG ? ARG_LLONG : ARG_LONG; p++; break;
                        case 'q': case 'L': sz = *p == 'q' ? ARG_LLONG : ARG_LDOUBLE; p++; break;
                        case 'j': sz = ARG_INTMAX; p++; break;
                        case 'z': case 'Z': sz = ARG_SIZE; p++; break;
                        case 't': sz = ARG_PTRDIFF; p++; break;
                        default: more = false; break;
                        }
                }
                if (!*p)
                        return;
                skip_conversion(*p++, sz, ap);
        }
}

static int journal_fd(void) {
        static int cached = -1;
        int fd = __atomic_load_n(&cached, __ATOMIC_ACQUIRE);
        if (fd >= 0)
                return fd;
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        int expected = -1;
        if (!__atomic_compare_exchange_n(&cached, &expected, fd, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                close(fd);
                return expected;
        }
        return fd;
}

/* "KEY=value\n" per field; a value holding a newline goes as "KEY\n", its length (64-bit little endian), the
 * value and "\n". The caller frees *ret. */
static int journal_encode(char **fields, size_t n, char **ret, size_t *ret_len) {
        size_t total = 0;
        for (size_t i = 0; i < n; i++) {
                const char *eq = strchr(fields[i], '=');
                if (!eq || eq == fields[i])
                        return -EINVAL;
                total += strlen(fields[i]) + 1 + 8;
        }
        char *buf = malloc(total ? total : 1), *w = buf;
        if (!buf)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const char *f = fields[i], *eq = strchr(f, '=');
                size_t len = strlen(f), klen = (size_t)(eq - f), vlen = len - klen - 1;
                if (!memchr(eq + 1, '\n', vlen)) {
                        memcpy(w, f, len);
                        w += len;
                } else {
                        memcpy(w, f, klen);
                        w += klen;
                        *w++ = '\n';
                        for (int b = 0; b < 8; b++)
                                *w++ = (char)(((uint64_t)vlen >> (8 * b)) & 0xff);
                        memcpy(w, eq + 1, vlen);
                        w += vlen;
                }
                *w++ = '\n';
        }
        *ret = buf;
        *ret_len = (size_t)(w - buf);
        return 0;
}

static int journal_send_fields(char **fields, size_t n) {
        if (n == 0)
                return -EINVAL;
        char *msg;
        size_t len;
        int r = journal_encode(fields, n, &msg, &len);
        if (r < 0)
                return r;
        int fd = journal_fd();
        if (fd >= 0) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = JOURNAL_SOCKET };
                r = sendto(fd, msg, len, MSG_NOSIGNAL, (struct sockaddr *)&sa, sizeof sa) < 0 ? -errno : 0;
        } else
                r = fd;
        free(msg);
        return r;
}

int sd_journal_send(const char *format, ...) {
        char *fields[JOURNAL_MAX_FIELDS];
        size_t n = 0;
        int r = 0;
        va_list ap;
        va_start(ap, format);
        for (const char *f = format; f; f = va_arg(ap, const char *)) {
                if (n == JOURNAL_MAX_FIELDS) {
                        r = -E2BIG;
                        break;
                }
                va_list aq;
                va_copy(aq, ap);
                int k = vasprintf(&fields[n], f, aq);
                va_end(aq);
                if (k < 0) {
                        r = -ENOMEM;
                        break;
                }
                n++;
                skip_format_args(f, &ap);
        }
        va_end(ap);
        if (r == 0)
                r = journal_send_fields(fields, n);
        for (size_t i = 0; i < n; i++)
                free(fields[i]);
        return r;
}
#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* util.c — bounded buffers, encodings, parsing helpers. */
#include "util.h"

#include "crypto.h"

#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/stat.h>

void free_secret(char *s) {
        if (!s)
                return;
        crypto_wipe(s, strlen(s));
        free(s);
}

static int buf_reserve(struct buf *b, size_t extra) {
        if (b->len + extra + 1 > b->cap)
                return -E2BIG;
        if (b->len + extra + 1 <= b->alloc)
                return 0;
        size_t n = b->alloc ? b->alloc : 64;
        while (n < b->len + extra + 1)
                n *= 2;
        if (n > b->cap)
                n = b->cap;
        char *p = realloc(b->data, n);
        if (!p)
                return -ENOMEM;
        b->data = p;
        b->alloc = n;
        return 0;
}

int buf_add(struct buf *b, const void *p, size_t n) {
        int r = buf_reserve(b, n);
        if (r < 0)
                return r;
        if (n)
                memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = 0;
        return 0;
}

void *array_room(void *v, size_t n, size_t *alloc, size_t elem, size_t first) {
        if (n < *alloc)
                return v;
        size_t na = *alloc ? *alloc * 2 : first;
        if (na < *alloc || elem == 0 || na > SIZE_MAX / elem)
                return NULL;
        void *p = realloc(v, na * elem);
        if (p)
                *alloc = na;
        return p;
}

int buf_adds(struct buf *b, const char *s) { return buf_add(b, s, strlen(s)); }
int buf_addc(struct buf *b, char c) { return buf_add(b, &c, 1); }

int buf_printf(struct buf *b, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -EINVAL;
        int r = buf_reserve(b, (size_t)n);
        if (r < 0)
                return r;
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
        return 0;
}

void buf_reset(struct buf *b) {
        b->len = 0;
        if (b->data)
                b->data[0] = 0;
}

void buf_free(struct buf *b) {
        free(b->data);
        b->data = NULL;
        b->len = b->alloc = 0;
}

char *buf_steal(struct buf *b) {
        char *p = b->data;
        if (!p)
                p = strdup("");
        b->data = NULL;
        b->len = b->alloc = 0;
        return p;
}

void hex_encode(const unsigned char *in, size_t n, char *out) {
        static const char hx[] = "0123456789abcdef";
        for (size_t i = 0; i < n; i++) {
                out[2 * i] = hx[in[i] >> 4];
                out[2 * i + 1] = hx[in[i] & 15];
        }
        out[2 * n] = 0;
}

int base64_encode(const unsigned char *in, size_t n, char **ret) {
        if (n > INT_MAX / 2)
                return -E2BIG;
        char *out = malloc(4 * ((n + 2) / 3) + 1);
        if (!out)
                return -ENOMEM;
        crypto_base64_encode(in, n, out);
        *ret = out;
        return 0;
}

int base64_decode(const char *in, unsigned char **ret, size_t *ret_len) {
        size_t n = strlen(in);
        if (n % 4 || n > INT_MAX / 2)
                return -EINVAL;
        unsigned char *out = malloc(n / 4 * 3 + 1);
        if (!out)
                return -ENOMEM;
        ssize_t m = crypto_base64_decode(in, n, out);
        if (m < 0) {
                free(out);
                return -EINVAL;
        }
        *ret = out;
        *ret_len = (size_t)m;
        return 0;
}

static bool unreserved(unsigned char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
               c == '_' || c == '.' || c == '~';
}

int uri_encode(struct buf *b, const char *s, size_t n, bool keep_slash) {
        static const char hx[] = "0123456789ABCDEF";
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                int r;
                if (unreserved(c) || (keep_slash && c == '/'))
                        r = buf_addc(b, (char)c);
                else {
                        char e[3] = { '%', hx[c >> 4], hx[c & 15] };
                        r = buf_add(b, e, 3);
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

static int hexval(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int uri_decode(const char *s, size_t n, char **ret) {
        char *out = malloc(n + 1);
        if (!out)
                return -ENOMEM;
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
                if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
                        out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
                        i += 2;
                } else
                        out[o++] = s[i];
        }
        out[o] = 0;
        *ret = out;
        return 0;
}

int parse_u64(const char *s, uint64_t *ret) {
        if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
                return -EINVAL;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end)
                return -EINVAL;
        *ret = v;
        return 0;
}

int parse_int(const char *s, long min, long max, long *ret) {
        if (!s || !*s || *s == ' ')
                return -EINVAL;
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno || *end || v < min || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

int format_iso8601_basic(time_t t, char out[17]) {
        struct tm tm;
        if (!gmtime_r(&t, &tm))
                return -EINVAL;
        if (strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
                return -EINVAL;
        return 0;
}

int format_iso8601(time_t t, char out[32]) {
        struct tm tm;
        out[0] = 0;
        if (!gmtime_r(&t, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
                return -EINVAL;
        return 0;
}

int parse_iso8601(const char *s, time_t *ret) {
        struct tm tm = { 0 };
        const char *e = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!e)
                return -EINVAL;
        if (*e == '.') /* fractional seconds */
                for (e++; *e >= '0' && *e <= '9'; e++)
                        ;
        if (strcmp(e, "Z") != 0 && strcmp(e, "+00:00") != 0 && strcmp(e, "") != 0)
                return -EINVAL;
        time_t t = timegm(&tm);
        if (t == (time_t)-1)
                return -EINVAL;
        *ret = t;
        return 0;
}

double now_mono(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

time_t now_wall(void) { return time(NULL); }

bool str_has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

bool str_has_suffix(const char *s, const char *p) {
        size_t a = strlen(s), b = strlen(p);
        return a >= b && memcmp(s + a - b, p, b) == 0;
}

char *strdup_or_null(const char *s) { return s ? strdup(s) : NULL; }

int strdup_checked(const char *s, char **ret) {
        char *p = strdup(s ? s : "");
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}

char *str_trim(char *s) {
        while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
                s++;
        size_t n = strlen(s);
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
                s[--n] = 0;
        return s;
}

int read_file_capped(const char *path, size_t cap, char **ret, size_t *ret_len) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        _cleanup_(buf_freep) struct buf b = BUF_INIT(cap + 1);
        char tmp[65536];
        for (;;) {
                ssize_t n = read(fd, tmp, sizeof tmp);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                if (buf_add(&b, tmp, (size_t)n) < 0)
                        return -EFBIG;
        }
        if (ret_len)
                *ret_len = b.len;
        *ret = buf_steal(&b);
        return 0;
}

const char *env_nonempty(const char *name) {
        const char *v = getenv(name);
        return v && *v ? v : NULL;
}

void errf(char *err, size_t errlen, const char *fmt, ...) {
        if (!err || !errlen)
                return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
}

int pathf(char *dst, size_t n, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(dst, n, fmt, ap);
        va_end(ap);
        if (k < 0 || (size_t)k >= n) {
                if (n)
                        dst[0] = 0;
                return -ENAMETOOLONG;
        }
        return 0;
}

void str_copy(char *dst, size_t n, const char *src) {
        size_t l = strnlen(src, n - 1);
        memcpy(dst, src, l);
        dst[l] = 0;
}

unsigned long long proc_start_time(pid_t pid) {
        if (pid <= 0)
                return 0;
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        _cleanup_free_ char *s = NULL;
        if (read_file_capped(path, 4096, &s, NULL) < 0)
                return 0;
        char *p = strrchr(s, ')');
        if (!p)
                return 0;
        /* fields after the command: state(3) ... starttime is field 22 */
        int field = 2;
        for (; *p && field < 22; p++)
                if (*p == ' ')
                        field++;
        unsigned long long v = strtoull(p, NULL, 10);
        return v;
}

int mkdir_parents(const char *path, mode_t mode) {
        _cleanup_free_ char *d = strdup(path);
        if (!d)
                return -ENOMEM;
        for (char *s = d + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(d, mode) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        return 0;
}

void fmt_bytes(uint64_t n, char out[32]) {
        static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
        double v = (double)n;
        size_t u = 0;
        while (v >= 1024 && u + 1 < sizeof unit / sizeof unit[0]) {
                v /= 1024;
                u++;
        }
        if (u == 0)
                snprintf(out, 32, "%llu B", (unsigned long long)n);
        else
                snprintf(out, 32, "%.1f %s", v, unit[u]);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* util.h — cleanup helpers, bounded buffers, small string helpers. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Project error codes share the negative-errno space; pick values above errno's range. */
enum {
        MF_EHTTP = 4096,  /* server answered with an HTTP error (details in the error string) */
        MF_EPARSE,        /* a peer's answer could not be parsed */
        MF_ENOTFOUND,     /* 404 / NoSuchKey */
        MF_EAUTH,         /* credentials refused or missing */
        MF_ESIZE,         /* size mismatch (truncated transfer) */
        MF_EREGION,       /* bucket lives in another region */
        MF_EPRECOND,      /* 412 PreconditionFailed: a conditional write lost (the object exists / changed) */
        MF_ECONFLICT,     /* 409 ConditionalRequestConflict: a concurrent conditional write; re-read and retry */
        MF_ECHECKSUM,     /* the bytes' CRC32 differs from the checksum S3 holds (a corrupt transfer) */
        MF_ESTORE,        /* the S3 store refused a conditional write whose condition held (it bends AWS's rules) */
        MF_ENOTREG,       /* a file of the experiment's to read is not a regular file (a FIFO, a socket, a device) */
};

static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd) { if (*fd >= 0) close(*fd); }
static inline void fclosep(FILE **f) { if (*f) fclose(*f); }
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

static inline void *steal_ptr(void *pp) {
        void **p = pp;
        void *v = *p;
        *p = NULL;
        return v;
}
#define TAKE_PTR(p) steal_ptr(&(p))

/* Secrets: wipe and free. */
void free_secret(char *s);

/* A growable buffer with a hard cap (curl's dynbuf). Always NUL-terminated. */
struct buf {
        char *data;
        size_t len;
        size_t alloc;
        size_t cap;
};
#define BUF_INIT(c) ((struct buf){ .cap = (c) })
int buf_add(struct buf *b, const void *p, size_t n);
int buf_adds(struct buf *b, const char *s);
int buf_addc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_reset(struct buf *b);
void buf_free(struct buf *b);
static inline void buf_freep(struct buf *b) { buf_free(b); }
char *buf_steal(struct buf *b);

/* Room for one more element in an array that doubles (the first allocation holds `first`): the array, moved
 * perhaps, with *alloc updated; NULL when out of memory, the old array and *alloc untouched. Used as
 *   struct x *v = array_room(a->v, a->n, &a->alloc, sizeof *v, 16); if (!v) return -ENOMEM; a->v = v; */
void *array_room(void *v, size_t n, size_t *alloc, size_t elem, size_t first);

/* Hex of bytes, lowercase; out must hold 2n+1. */
void hex_encode(const unsigned char *in, size_t n, char *out);
int base64_encode(const unsigned char *in, size_t n, char **ret);
int base64_decode(const char *in, unsigned char **ret, size_t *ret_len);

/* RFC 3986 encoding: everything but A-Z a-z 0-9 - _ . ~ (and '/' if keep_slash) as %XX. */
int uri_encode(struct buf *b, const char *s, size_t n, bool keep_slash);
/* Percent-decoding; '+' is left as is. */
int uri_decode(const char *s, size_t n, char **ret);

/* Safe integer parsing (whole string, range-checked). */
int parse_u64(const char *s, uint64_t *ret);
int parse_int(const char *s, long min, long max, long *ret);

/* Times. */
int format_iso8601_basic(time_t t, char out[17]);   /* 20150830T123600Z */
int parse_iso8601(const char *s, time_t *ret);      /* 2015-08-30T12:36:00Z */
int format_iso8601(time_t t, char out[32]);         /* 2015-08-30T12:36:00Z (UTC); -EINVAL for a time gmtime refuses */
/* "600.0 MiB" (B, KiB, MiB, GiB, TiB): a size as a person reads it. */
void fmt_bytes(uint64_t n, char out[32]);
double now_mono(void);
time_t now_wall(void);

bool str_has_prefix(const char *s, const char *p);
bool str_has_suffix(const char *s, const char *p);
char *strdup_or_null(const char *s);
int strdup_checked(const char *s, char **ret);
char *str_trim(char *s);

/* printf into an optional error buffer (err NULL or errlen 0: nothing). */
void errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* snprintf for a path or an S3 key: -ENAMETOOLONG (and dst "") when the result does not fit, since a cut path or
 * key names another file. A message, which may be cut, is written with errf. */
int pathf(char *dst, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4), warn_unused_result));
/* Copies at most n - 1 bytes of src and a NUL (n > 0). */
void str_copy(char *dst, size_t n, const char *src);
/* Read a whole file, at most cap bytes (-EFBIG beyond). */
int read_file_capped(const char *path, size_t cap, char **ret, size_t *ret_len);
/* Environment variable, NULL when unset or empty. */
const char *env_nonempty(const char *name);

/* mkdir -p of path's parent directories (not path itself), by name: links are followed. For the agent's own
 * directories only (state, logs, cache, `mayfly cp` on a laptop); the workdir is made by exptree_open. */
int mkdir_parents(const char *path, mode_t mode);
/* starttime of a live process (from /proc), 0 when it does not exist. */
unsigned long long proc_start_time(pid_t pid);

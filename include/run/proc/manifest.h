/* SPDX-License-Identifier: Apache-2.0 */
/* manifest.h — what was staged of an input (inputs.h): each object's key, size and ETag as S3 listed them, and the
 * size and mtime its file had once written. A start on the same disk downloads an object again only when S3's entry
 * or the file differs. Pure, but for manifest_load/manifest_save.
 *
 * On disk, JSON Lines (one cJSON object a line, so a manifest of a million objects never sits in memory as one
 * tree): a header {"manifest": 1, "source": S, "place": P}, one {"k": KEY, "s": SIZE, "e": ETAG, "ls": SIZE,
 * "lm": MTIME_S, "ln": MTIME_NS} per object, and a last {"complete": true|false, "objects": N}. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#define MANIFEST_MAX_OBJECTS 10000000

struct staged {
        char *key;                    /* with the ETag after its NUL (one allocation) */
        const char *etag;
        uint64_t size;                /* S3's */
        uint64_t lsize;               /* the file's, once written */
        int64_t lmtime;               /* its mtime, ns */
        bool has_file;                /* its file was written (lsize, lmtime hold); false: not yet */
        bool seen;                    /* listed again at this start */
};

struct manifest {
        char *source;                 /* the input's source URI, and where it was staged (root and path) */
        char *place;
        bool complete;                /* every object listed then was staged */
        struct staged *v;
        size_t n, alloc;
        bool sorted;
};

int manifest_init(struct manifest *m, const char *source, const char *place);
void manifest_free(struct manifest *m);
/* Adds an object (the strings copied; has_file when lsize and lmtime are the file's); its index, or -errno. */
long manifest_add(struct manifest *m, const char *key, uint64_t size, const char *etag, uint64_t lsize,
                  int64_t lmtime, bool has_file);
/* Sorts by key (bytes, as S3 lists) once, then finds key: the entry or NULL. */
struct staged *manifest_find(struct manifest *m, const char *key);
/* st's mtime in nanoseconds into *ret; false when it does not fit (a time past 2262). Pure. */
bool manifest_mtime(const struct stat *st, int64_t *ret);
/* Whether the file st (its own: lstat) is still what was staged as e for S3's entry (size, etag): a regular file of
 * the size and mtime recorded, for an object of the same size and ETag. Pure. */
bool manifest_unchanged(const struct staged *e, uint64_t size, const char *etag, const struct stat *st);
/* Parses a manifest's text (len bytes); a line that is not what it should be ends it (-EINVAL, err names the line).
 * A manifest for another source or place is read as empty (0, nothing in it). */
int manifest_parse(struct manifest *m, const char *text, size_t len, char *err, size_t errlen);
/* The text of m (only the entries with a file), in *ret (free it). */
int manifest_format(const struct manifest *m, char **ret, size_t *ret_len);
/* Reads path into m (missing: empty, 0); writes m to path through a temporary file renamed over it (0600). */
int manifest_load(struct manifest *m, const char *path, char *err, size_t errlen);
int manifest_save(const struct manifest *m, const char *path, char *err, size_t errlen);

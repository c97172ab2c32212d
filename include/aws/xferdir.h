/* SPDX-License-Identifier: Apache-2.0 */
/* xferdir.h — batches of whole-file transfers: prefixes <-> directory trees, run in parallel. */
#pragma once
#include <pthread.h>
#include <sys/stat.h>

#include "aws/transfer.h"

#define XFER_MAX_FILES 1000000

struct xfer_item {
        char *key;
        char *path;
        uint64_t size;
        int64_t mtime_ns;             /* a file found by a walk or a glob: its mtime (0: not known) */
        size_t tag;                   /* its index when added (what done() is told) */
};

struct xfer_batch {
        struct aws_ctx *c;
        char *bucket;
        bool upload;
        struct xfer_item *items;
        size_t n, alloc;
        uint64_t total;
        struct xfer_opts opts;
        int rootfd;                   /* >= 0: item paths are relative, resolved beneath this tree (beneath.h) */
        /* paths refused beneath the tree (a link out of it): skipped, counted, the first one kept */
        pthread_mutex_t refuse_lock;
        size_t refused;
        char refused_path[512];
        int refused_rc;               /* -EXDEV: a link out of the tree; -ELOOP: a link (no openat2); -MF_ENOTREG */
        /* walks and globs add a file only when keep (NULL: always) says so, e.g. not when it is in S3 already */
        bool (*keep)(void *ud, const char *key, const struct stat *st);
        void *keep_ud;
        /* told of each item transferred (from the transfer threads; NULL: nobody) */
        void (*done)(void *ud, const struct xfer_item *it);
        void *done_ud;
};

int xfer_batch_init(struct xfer_batch *b, struct aws_ctx *c, const char *bucket, bool upload,
                    const struct xfer_opts *o);
/* From now on item paths are relative to rootfd and every open, create and listing stays beneath it: a link
 * inside the tree is followed, one out of it is refused (noted in refused/refused_path, the rest goes on), and so is
 * an upload's file that is not a regular file once opened (opened O_NONBLOCK: a FIFO never parks the thread). The
 * caller keeps rootfd open until the batch is freed. */
void xfer_batch_beneath(struct xfer_batch *b, int rootfd);
int xfer_batch_add(struct xfer_batch *b, const char *key, const char *path, uint64_t size);
/* Notes a refused path (thread-safe). */
void xfer_batch_refuse(struct xfer_batch *b, const char *path, int r);
/* Big files one after another with parallel parts, then small files in parallel, one connection each. */
int xfer_batch_run(struct xfer_batch *b, struct aws_result *out);
void xfer_batch_free(struct xfer_batch *b);

/* Adds every object under prefix (a key ending in '/', or "") as dir/<key minus prefix> (beneath the tree: dir is
 * relative, "" the root); a key that would land outside dir is refused (-EINVAL). */
int xfer_batch_add_prefix(struct xfer_batch *b, const char *prefix, const char *dir, struct aws_result *out);
/* Adds every regular file under dir as prefix<relative path>; filter (may be NULL) picks files. Beneath a tree a
 * link to a file inside it is added under the link's name, a link to a directory is not descended. */
int xfer_batch_add_tree(struct xfer_batch *b, const char *dir, const char *prefix,
                        bool (*filter)(void *ud, const char *rel, const struct stat *st), void *ud,
                        struct aws_result *out);
/* Beneath a tree only: every match of a glob (fnmatch per path component, FNM_PERIOD) as prefix<path>, a matching
 * directory as prefix<path>/<files under it>. Returns the number of matches (0: nothing matched) or -errno. */
int xfer_batch_add_glob(struct xfer_batch *b, const char *pattern, const char *prefix, struct aws_result *out);

/* xferdir.h — batches of whole-file transfers: prefixes <-> directory trees, run in parallel. */
#pragma once
#include <sys/stat.h>

#include "aws/transfer.h"

#define XFER_MAX_FILES 1000000

struct xfer_item {
        char *key;
        char *path;
        uint64_t size;
};

struct xfer_batch {
        struct aws_ctx *c;
        char *bucket;
        bool upload;
        struct xfer_item *items;
        size_t n, alloc;
        uint64_t total;
        struct xfer_opts opts;
};

int xfer_batch_init(struct xfer_batch *b, struct aws_ctx *c, const char *bucket, bool upload,
                    const struct xfer_opts *o);
int xfer_batch_add(struct xfer_batch *b, const char *key, const char *path, uint64_t size);
/* Big files one after another with parallel parts, then small files in parallel, one connection each. */
int xfer_batch_run(struct xfer_batch *b, struct aws_result *out);
void xfer_batch_free(struct xfer_batch *b);

/* Adds every object under prefix (a key ending in '/', or "") as dir/<key minus prefix>;
 * a key that would land outside dir is refused (-EINVAL). */
int xfer_batch_add_prefix(struct xfer_batch *b, const char *prefix, const char *dir, struct aws_result *out);
/* Adds every regular file under dir as prefix<relative path>; filter (may be NULL) picks files. */
int xfer_batch_add_tree(struct xfer_batch *b, const char *dir, const char *prefix,
                        bool (*filter)(void *ud, const char *rel, const struct stat *st), void *ud,
                        struct aws_result *out);

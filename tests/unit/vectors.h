/* SPDX-License-Identifier: Apache-2.0 */
/* vectors.h — the unit tests' one way to read a file of tests/vectors (the folder is argv[1], see tests/run.py). */
#pragma once
#include <stdio.h>

#include "util.h"

static const char *t_vec = "tests/vectors";

/* The file's text (NUL-terminated, at most 1 MiB; its length in *len when len is not NULL), or NULL. */
static inline char *t_fixture(const char *rel, size_t *len) {
        char p[1024];
        char *s = NULL;
        if ((size_t)snprintf(p, sizeof p, "%s/%s", t_vec, rel) >= sizeof p)
                return NULL;
        if (read_file_capped(p, 1 << 20, &s, len) < 0)
                return NULL;
        return s;
}

static inline void t_vectors_from(int argc, char **argv) {
        if (argc > 1)
                t_vec = argv[1];
}

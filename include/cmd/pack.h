/* SPDX-License-Identifier: Apache-2.0 */
/* pack.h — a local source folder as `launch` uploads it: its files in name order, `.git/` and what `.mayflyignore`
 * names left out, packed into a .tar.gz (libarchive), and named by a hash of the tree itself — every path, whether
 * it is executable, and every file's contents (SHA-256), not the tar's bytes, which carry times — so that an
 * unchanged folder is uploaded once and found again.
 *
 * .mayflyignore: gitignore's syntax, one pattern a line: `#` comments, blank lines, `!` takes a pattern back,
 * a trailing `/` matches folders only, a leading (or inner) `/` anchors the pattern at the folder's root, else it
 * matches a name at any depth; `*`, `?`, `[...]`, and `**` (any number of folders). The last pattern that matches
 * decides; a folder left out leaves out everything in it. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PACK_MAX_PATTERNS 256
#define PACK_MAX_FILES 100000

struct pack_ignore {
        size_t n;
        struct {
                char pat[256];
                bool negate, dir_only, anchored;
        } p[PACK_MAX_PATTERNS];
};

/* Pure: .mayflyignore's text into ig (`.git/` is always left out, on top of it). */
void pack_ignore_parse(const char *text, struct pack_ignore *ig);
/* Pure: whether rel (a path below the root, '/'-separated) is left out. */
bool pack_ignored(const struct pack_ignore *ig, const char *rel, bool is_dir);

struct pack_tree {
        char hash[65];          /* the tree's SHA-256, hex */
        size_t files;
        uint64_t bytes;
};

/* The tree's hash and size (its files read once). 0, or -errno with err. */
int pack_hash(const char *dir, struct pack_tree *ret, char *err, size_t errlen);
/* dir into out (.tar.gz), a progress line on stderr when it is a terminal. 0, or -errno with err. */
int pack_write(const char *dir, const char *out, char *err, size_t errlen);

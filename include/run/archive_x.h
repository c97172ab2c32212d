/* archive_x.h — extracting experiment archives (tar, tar.gz, tar.zst, zip) with libarchive, never
 * writing outside the destination directory. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#define ARCHIVE_MAX_ENTRIES 1000000

/* Pure: may an entry named `path` (and, for links, pointing at `link`) be extracted below the root?
 * Absolute paths, '..' components and symlinks whose target leaves the root are refused. */
bool archive_path_safe(const char *path);
bool archive_symlink_safe(const char *path, const char *target);

/* Extracts `file` into `dir` (which must exist). On failure a one-line message names the entry. */
int archive_extract(const char *file, const char *dir, char *err, size_t errlen);
/* Packs a directory as .tar.gz (used by `mayfly launch` for a local source). */
int archive_pack_dir(const char *dir, const char *out, char *err, size_t errlen);

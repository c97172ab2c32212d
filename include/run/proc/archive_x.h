/* SPDX-License-Identifier: Apache-2.0 */
/* archive_x.h — extracting experiment archives (tar, tar.gz, tar.zst, zip) with libarchive, never writing
 * outside the destination directory, and packing a local directory. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#define ARCHIVE_MAX_ENTRIES 1000000

/* Pure: may an entry named `path` be extracted below the root? Absolute paths and '..' components are refused. */
bool archive_path_safe(const char *path);

/* The tree a link is resolved against: >= 0 when path is a link (its target, NUL-terminated, in buf); -EINVAL
 * when it is something else, -ENOENT when there is nothing there; another -errno refuses. */
typedef int (*archive_readlink_fn)(void *ud, const char *path, char *buf, size_t n);

/* Resolves the link `path -> target` as the kernel would, from the link's directory, following the links that
 * the tree (rl; NULL: a tree without links) already holds, at most 40 of them; true when no step leaves the
 * root. Absolute targets are refused. Pure: the tree is the callback. */
bool archive_link_inside(const char *path, const char *target, archive_readlink_fn rl, void *ud);
/* The same against a tree without links (the target alone). */
bool archive_symlink_safe(const char *path, const char *target);

/* Extracts the archive open at afd into the tree rootfd, which must be the calling thread's working directory
 * (as_user gives a thread its own, run/asuser.h): names are relative to it. Refused, each with a one-line message
 * naming the entry: absolute or '..' paths, hard links, device nodes, FIFOs and sockets, setuid/setgid files,
 * entries whose path goes through a link, and links that lead out of the tree — each resolved against the
 * tree built so far, and every link again once the whole archive is out. */
int archive_extract(int afd, int rootfd, char *err, size_t errlen);

/* SPDX-License-Identifier: Apache-2.0 */
/* beneath.h — paths resolved beneath a directory fd that cannot leave its tree.
 *
 * The rule (docs/security.md): every file operation on a path the experiment controls (its workdir, the
 * checkpoint directory, an output) is done by a thread running with the run user's identity (run/asuser.h) AND
 * through these calls, relative to the tree's root fd. Resolution never leaves the tree: with openat2
 * RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS a link that points inside the tree is followed, one that points out of it
 * (absolute, or enough '..') fails with -EXDEV; where the kernel lacks openat2 (before 5.6) each component is opened
 * with O_NOFOLLOW, so any link fails (-ELOOP). A relative path with '..', '.', empty components or a leading '/' is
 * refused before the kernel sees it (-EINVAL). */
#pragma once
#include <stdbool.h>
#include <sys/types.h>

/* openat(rootfd, rel, flags, mode) beneath rootfd; O_CLOEXEC is always added. rel "" opens the root itself.
 * Returns the fd or -errno: -EXDEV/-ELOOP for a link out of the tree (beneath_refused()), -EINVAL for a bad rel. */
int beneath_open(int rootfd, const char *rel, int flags, mode_t mode);

/* mkdir -p of rel beneath rootfd (each component created with mode if missing, never through a link); returns
 * an O_DIRECTORY fd of the last component, or -errno (-ENOTDIR where a component is not a directory). */
int beneath_mkdirs(int rootfd, const char *rel, mode_t mode);

/* True for the errors that mean "a link that leaves the tree" (or, without openat2, any link). */
bool beneath_refused(int r);

/* True when rel is a plain relative path: no leading '/', no '.', '..' or empty component. Pure. */
bool beneath_rel_ok(const char *rel);

/* Forces the per-component O_NOFOLLOW walk, as on a kernel without openat2 (tests). */
void beneath_force_fallback(bool on);

/* SPDX-License-Identifier: Apache-2.0 */
/* exptree.h — the experiment's tree: its workdir, and the checkpoint directory and outputs inside it.
 *
 * Everything the agent does there goes through this module, which holds the one rule (docs/security.md): a thread
 * with the run user's identity (run/asuser.h) does the work, and every path is resolved beneath the workdir's fd
 * (beneath.h). The experiment can plant links and swap files at any moment; the worst it gets is that the agent
 * does, as the run user and inside the workdir, what the experiment could have done itself. */
#pragma once
#include <sys/stat.h>

#include "aws/xferdir.h"
#include "run/proc/runner.h"

/* Creates the workdir (and, as root, its parents: they are the job spec's, not the experiment's) and opens it,
 * walking from / one component at a time through the fd of the directory above (openat/mkdirat, O_NOFOLLOW): a
 * symbolic link anywhere on the path is refused (-ELOOP), and so is an existing parent the run user owns or may
 * write to (exptree_ancestor; -EPERM), err naming it. Only a workdir this call created is handed (fchown of its fd)
 * to the run user; an existing one must already be the user's (-EPERM otherwise). With the agent not root, or the
 * run user root, there is no one to guard against: only links are refused. Returns an O_DIRECTORY fd or -errno with
 * err set. */
int exptree_open(const char *path, const struct run_user *u, char *err, size_t errlen);

/* What an existing parent of the workdir is to the run user (sshd's StrictModes rule, inverted: the run user is the
 * one who must not be able to change it). Pure. */
enum ancestor_verdict {
        ANC_OK,
        ANC_NOT_DIR,
        ANC_LINK,           /* (found by the walk, not by this function) */
        ANC_OWNED,          /* the run user owns it: it could rename what lies below and plant a link */
        ANC_WRITABLE,       /* group-writable with the user in the group, or other-writable, and not sticky root's */
};
enum ancestor_verdict exptree_ancestor(const struct stat *st, const struct run_user *u);
const char *exptree_ancestor_why(enum ancestor_verdict v);
/* Whether gid g is the user's primary group or one of its supplementary groups. Pure. */
bool exptree_user_in_group(const struct run_user *u, gid_t g);

/* mkdir -p of rel in the tree, as the run user. 0 or -errno (beneath_refused(): a link out of the workdir). */
int exptree_mkdir(const struct run_user *u, int rootfd, const char *rel);
/* rel opened for reading as the run user (a file the experiment writes, read by the agent through the fd): a
 * regular file only (anything else -EINVAL; the open never waits on a FIFO). The fd, or -errno. */
int exptree_open_read(const struct run_user *u, int rootfd, const char *rel);
/* Whether the directory rel holds anything, looked at as the run user (false when it cannot be read). */
bool exptree_empty(const struct run_user *u, int rootfd, const char *rel);

/* Extracts the archive open at afd (opened by the agent: it is the agent's file) into the tree, as the run user.
 * On failure err names the entry. */
int exptree_extract(const struct run_user *u, int rootfd, int afd, char *err, size_t errlen);

/* Fills and runs the batch b (set beneath the tree first) as the run user: fill(b, ud, out) adds the items, then
 * they are transferred. Refused paths are in b->refused/refused_path afterwards. */
int exptree_transfer(const struct run_user *u, int rootfd, struct xfer_batch *b,
                     int (*fill)(struct xfer_batch *b, void *ud, struct aws_result *out), void *ud,
                     struct aws_result *out);

/* The job's source into the tree: a prefix (ending in '/') copied, or an archive downloaded into cache_dir (the
 * agent's own) and extracted as the run user. On failure err says why in one line. */
int exptree_fetch(struct aws_ctx *c, const char *source, const char *cache_dir, const struct run_user *u, int rootfd,
                  char *err, size_t errlen);

/* Objects under prefix into the directory dir of the tree, created by and owned by the run user; *ret_n objects;
 * refused: the first path refused ("" when none). */
int exptree_restore(struct aws_ctx *c, const char *bucket, const char *prefix, const struct run_user *u, int rootfd,
                    const char *dir, size_t *ret_n, char *refused, size_t refusedlen, struct aws_result *out);

/* "outputs/x: a link out of the workdir" for a batch's first refusal, into dst. */
void exptree_refusal(const struct xfer_batch *b, char *dst, size_t n);

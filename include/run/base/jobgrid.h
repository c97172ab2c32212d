/* SPDX-License-Identifier: Apache-2.0 */
/* jobgrid.h — grids: an experiment with "matrix": {"lr": [0.1, 0.01], "bs": [32, 64]} stands for one experiment per
 * combination (the last key varies fastest), "{lr}" and "{bs}" replaced by each value in its name and command
 * ("${...}", a shell's, is left alone). Pure: a cJSON tree in, the same tree with the grids expanded out. */
#pragma once
#include <stddef.h>

struct cJSON;

#define JOB_MATRIX_MAX_KEYS 8
#define JOB_MATRIX_MAX_VALUES 64
#define JOB_MATRIX_MAX_TEXT (256 * 1024)   /* a name or command after substitution */

/* Expands every grid of root's "experiments" in place. 0; -EINVAL with "JSON.path: why" in err (a matrix that is
 * not an object of non-empty arrays of strings, numbers or booleans, a name that does not name every key, more
 * than max_experiments in all); -ENOMEM. */
int job_expand_matrix(struct cJSON *root, size_t max_experiments, char *err, size_t errlen);
/* Pure: s with every "{key}" (not "${key}") replaced by value, into a new string (NULL: out of memory). */
char *job_matrix_subst(const char *s, const char *key, const char *value);

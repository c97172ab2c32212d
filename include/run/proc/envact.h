/* SPDX-License-Identifier: Apache-2.0 */
/* envact.h — find a conda env or venv and build the argv that runs a command inside it.
 *
 * mayfly does not re-implement activation: it checks *where* the env is (to fail early with a clear message) and
 * then runs the experiment through bash the way a user would (`. conda.sh && conda activate ENV`, or
 * `. VENV/bin/activate`), followed by exec of the command in the same process, so activate.d hooks run and the
 * command inherits the activated environment. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#define ENVACT_PATH_MAX 4096
#define ENVACT_EXIT_ACTIVATE 126 /* exit status of the wrapper when activation fails */

enum env_kind { ENV_NONE, ENV_CONDA, ENV_CONDA_PREFIX, ENV_VENV };

struct env_spec {
        enum env_kind kind;
        const char *value; /* env name, prefix path, or venv path */
};

struct envact_search {
        const char *conda_exe; /* $CONDA_EXE or NULL */
        const char *home;      /* run user's home or NULL */
};

struct envact_plan {
        enum env_kind kind;
        char conda_sh[ENVACT_PATH_MAX]; /* <base>/etc/profile.d/conda.sh (conda kinds) */
        char target[ENVACT_PATH_MAX];   /* env name, absolute prefix, or venv directory */
        char activate[ENVACT_PATH_MAX]; /* <venv>/bin/activate (ENV_VENV) */
};

/* Find the env. Conda bases, in order: dirname(dirname(conda_exe)) when absolute, /opt/conda, <home>/anaconda3,
 * <home>/miniconda3; a base counts when it has etc/profile.d/conda.sh.
 *  ENV_CONDA: "base" (or "root") means the first base; otherwise the first base with envs/<name> as a directory.
 *  ENV_CONDA_PREFIX: an absolute path with conda-meta/, activated through the first base.
 *  ENV_VENV: an absolute path with bin/activate.
 * Not found: -ENOENT, and err gets one line naming the env and every place searched, e.g.
 * "conda env 'pytorch' not found; searched /opt/conda/envs/pytorch, /home/ubuntu/anaconda3/envs/pytorch
 *  (no conda at /home/ubuntu/miniconda3)".
 * Bad input (a name with '/', starting with '.' or '-', empty, control characters; a relative path): -EINVAL.
 * ret is written only on success; err may be NULL. ENV_NONE resolves to an empty plan. */
int envact_resolve(const struct env_spec *spec, const struct envact_search *s, struct envact_plan *ret, char *err,
                   size_t errlen);

/* A NULL-terminated argv (free with envact_free_argv) that runs cmd inside the planned environment:
 *   /bin/bash --noprofile --norc -c '<fixed script>' mayfly-env <conda_sh|activate> <target> -- <cmd...>
 * The script never interpolates input; it activates (stdin from /dev/null, its output to stderr), unsets PS1
 * (bash -c never passes one on) and execs the command. cmd is an argv (shell=false) or one shell string
 * (shell=true, cmd[1] must be NULL), run as /bin/bash -c STRING inside the env.
 * ENV_NONE: the command as is (or /bin/bash -c STRING).
 * Activation failure: exit 126 with "mayfly-env: ..." on stderr naming the env. -EINVAL for an empty cmd. */
int envact_command(const struct envact_plan *p, char *const *cmd, bool shell, char ***ret_argv);
void envact_free_argv(char **argv);
/* envact_command's argv, with a bare command name (no '/') run through /usr/bin/env so that the experiment's own
 * PATH finds it. */
int envact_exec_argv(const struct envact_plan *p, char *const *cmd, bool shell, char ***ret_argv);
static inline void envact_free_argvp(char ***p) { envact_free_argv(*p); }

/* SPDX-License-Identifier: Apache-2.0 */
/* envact.c — find a conda env or venv, and build the bash argv that activates it and execs the command. */
#include "run/proc/envact.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

#define ENVACT_MAX_BASES 4
#define ENVACT_NAME_MAX 255
#define ENVACT_ARGV0 "mayfly-env"
#define ENVACT_BASH "/bin/bash"

/* The wrapper scripts. They never interpolate input: $1 = conda.sh or bin/activate, $2 = env name/prefix or venv
 * directory, $3 = "--", the rest is the command. Pitfalls of a non-interactive shell under systemd handled here:
 * nounset/errexit (possibly imported through SHELLOPTS) off, because DLAMI hooks use unset variables; HOME filled
 * from the passwd entry when unset (what conda's Python does for ~, and what hooks using $HOME expect); no
 * ~/.bashrc or conda init needed (conda.sh is sourced directly); activation reads /dev/null and writes to stderr, so
 * hooks cannot eat the command's stdin or pollute its stdout; a hook that exits the shell is reported as an
 * activation failure by the EXIT trap; PS1 (set by conda.sh and conda activate, exported by Python 3.11 venvs) is
 * unset again, as it was: bash drops PS1 from its environment when it is not interactive, so the command never sees
 * a prompt (a sign of an interactive shell to some programs). */
#define ENVACT_SCRIPT_HEAD(what)                                                                                      \
        "set +o errexit +o nounset\n"                                                                                 \
        "unset __mayfly_cmd __mayfly_env\n"                                                                           \
        "__mayfly_fail() {\n"                                                                                         \
        "        trap - EXIT\n"                                                                                       \
        "        printf \"mayfly-env: cannot activate " what " '%s': %s\\n\" \"$__mayfly_env\" \"$1\" >&2\n"          \
        "        exit 126\n"                                                                                          \
        "}\n"                                                                                                         \
        "__mayfly_env=$2\n"                                                                                           \
        "if [ \"$#\" -lt 4 ] || [ \"$3\" != -- ]; then __mayfly_fail 'usage: mayfly-env FILE ENV -- COMMAND...'; fi\n" \
        "__mayfly_cmd=(\"${@:4}\")\n"                                                                                 \
        "if [ -z \"${HOME:-}\" ]; then\n"                                                                             \
        "        unset HOME; HOME=~\n"                                                                                \
        "        if [ \"$HOME\" = '~' ]; then unset HOME; else export HOME; fi\n"                                     \
        "fi\n"                                                                                                        \
        "trap '__mayfly_fail \"activation exited the shell\"' EXIT\n"

#define ENVACT_SCRIPT_TAIL                                                                                            \
        "trap - EXIT\n"                                                                                               \
        "set +o errexit +o nounset\n"                                                                                 \
        "unset PS1 __mayfly_env\n"                                                                                    \
        "exec \"${__mayfly_cmd[@]}\"\n"

static const char script_conda[] =
        ENVACT_SCRIPT_HEAD("conda env")
        ". \"$1\" </dev/null >&2 || __mayfly_fail \"cannot source $1\"\n"
        "conda activate \"$2\" </dev/null >&2 || __mayfly_fail \"conda activate failed with status $?\"\n"
        ENVACT_SCRIPT_TAIL;

static const char script_venv[] =
        ENVACT_SCRIPT_HEAD("venv")
        ". \"$1\" </dev/null >&2 || __mayfly_fail \"sourcing $1 failed with status $?\"\n"
        ENVACT_SCRIPT_TAIL;

/* ---------------------------------------------------------------------------------------------- error text */

struct errw {
        char *p;
        size_t n, len;
};

static void ew_addf(struct errw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ew_addf(struct errw *w, const char *fmt, ...) {
        if (!w->p || w->n == 0 || w->len >= w->n - 1)
                return;
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(w->p + w->len, w->n - w->len, fmt, ap);
        va_end(ap);
        if (k > 0)
                w->len = MIN(w->len + (size_t)k, w->n - 1);
}

/* A value from input, control characters shown as '?', so err stays one line. */
static void ew_addv(struct errw *w, const char *s) {
        for (; s && *s; s++)
                ew_addf(w, "%c", ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s);
}

static void ew_init(struct errw *w, char *err, size_t errlen) {
        *w = (struct errw){ .p = err, .n = errlen };
        if (err && errlen)
                err[0] = 0;
}

/* ---------------------------------------------------------------------------------------------- paths */

static bool has_ctl(const char *s) {
        for (; *s; s++)
                if ((unsigned char)*s < 0x20 || *s == 0x7f)
                        return true;
        return false;
}

static bool is_dir(const char *p) {
        struct stat st;
        return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *p) {
        struct stat st;
        return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* out = a + "/" + b (a without its trailing slashes). -ENAMETOOLONG when it does not fit. */
static int path_join(char out[static ENVACT_PATH_MAX], const char *a, const char *b) {
        size_t la = strlen(a);
        while (la > 1 && a[la - 1] == '/')
                la--;
        bool root = la == 1 && a[0] == '/';
        int k = snprintf(out, ENVACT_PATH_MAX, "%.*s%s%s", (int)la, a, root ? "" : "/", b);
        if (k < 0 || (size_t)k >= ENVACT_PATH_MAX)
                return -ENAMETOOLONG;
        return 0;
}

/* An absolute path without trailing slashes, no control characters. */
static int path_clean(char out[static ENVACT_PATH_MAX], const char *p) {
        if (!p || p[0] != '/' || has_ctl(p))
                return -EINVAL;
        size_t l = strlen(p);
        while (l > 1 && p[l - 1] == '/')
                l--;
        if (l >= ENVACT_PATH_MAX)
                return -ENAMETOOLONG;
        memcpy(out, p, l);
        out[l] = 0;
        return 0;
}

/* Drop the last component: "/a/b" -> "/a", "/a" -> "/". */
static void path_up(char *p) {
        char *s = strrchr(p, '/');
        if (!s)
                return;
        if (s == p)
                p[1] = 0;
        else
                *s = 0;
}

/* ---------------------------------------------------------------------------------------------- bases */

struct bases {
        size_t n;
        char path[ENVACT_MAX_BASES][ENVACT_PATH_MAX];
        bool ok[ENVACT_MAX_BASES]; /* has etc/profile.d/conda.sh */
};

static void bases_add(struct bases *b, const char *p) {
        for (size_t i = 0; i < b->n; i++)
                if (strcmp(b->path[i], p) == 0)
                        return;
        char sh[ENVACT_PATH_MAX];
        snprintf(b->path[b->n], ENVACT_PATH_MAX, "%s", p);
        b->ok[b->n] = path_join(sh, p, "etc/profile.d/conda.sh") == 0 && is_file(sh);
        b->n++;
}

/* dirname(dirname(conda_exe)) when absolute, /opt/conda, <home>/anaconda3, <home>/miniconda3. Candidates that are
 * not absolute or too long are skipped. */
static void bases_find(const struct envact_search *s, struct bases *b) {
        char p[ENVACT_PATH_MAX];
        b->n = 0;
        if (s && s->conda_exe && path_clean(p, s->conda_exe) == 0) {
                path_up(p);
                path_up(p);
                bases_add(b, p);
        }
        bases_add(b, "/opt/conda");
        if (s && s->home && s->home[0] == '/' && !has_ctl(s->home)) {
                if (path_join(p, s->home, "anaconda3") == 0)
                        bases_add(b, p);
                if (path_join(p, s->home, "miniconda3") == 0)
                        bases_add(b, p);
        }
}

static int bases_first(const struct bases *b) {
        for (size_t i = 0; i < b->n; i++)
                if (b->ok[i])
                        return (int)i;
        return -1;
}

/* " (no conda at A, B)" or, when sep is "", "no conda at A, B". */
static void ew_no_conda(struct errw *w, const struct bases *b, bool paren) {
        bool first = true;
        for (size_t i = 0; i < b->n; i++) {
                if (b->ok[i])
                        continue;
                ew_addf(w, "%s", first ? (paren ? " (no conda at " : "no conda at ") : ", ");
                ew_addv(w, b->path[i]);
                first = false;
        }
        if (!first && paren)
                ew_addf(w, ")");
}

static int set_conda_sh(struct envact_plan *p, const char *base) {
        return path_join(p->conda_sh, base, "etc/profile.d/conda.sh");
}

/* ---------------------------------------------------------------------------------------------- resolve */

static int resolve_conda(const char *name, const struct bases *b, struct envact_plan *p, struct errw *w) {
        size_t l = strlen(name);
        if (l == 0 || l > ENVACT_NAME_MAX || strchr(name, '/') || name[0] == '.' || name[0] == '-' || has_ctl(name)) {
                ew_addf(w, "invalid conda env name '");
                ew_addv(w, name);
                ew_addf(w, "': must be a plain name (no '/', not starting with '.' or '-')");
                return -EINVAL;
        }
        if (strcmp(name, "base") == 0 || strcmp(name, "root") == 0) {
                int i = bases_first(b);
                if (i >= 0) {
                        snprintf(p->target, sizeof p->target, "%s", name);
                        return set_conda_sh(p, b->path[i]);
                }
                ew_addf(w, "conda env '%s' not found; ", name);
                ew_no_conda(w, b, false);
                return -ENOENT;
        }

        char env[ENVACT_PATH_MAX], rel[ENVACT_NAME_MAX + 8];
        snprintf(rel, sizeof rel, "envs/%s", name);
        for (size_t i = 0; i < b->n; i++)
                if (b->ok[i] && path_join(env, b->path[i], rel) == 0 && is_dir(env)) {
                        snprintf(p->target, sizeof p->target, "%s", name);
                        return set_conda_sh(p, b->path[i]);
                }

        ew_addf(w, "conda env '%s' not found; ", name);
        bool any = false;
        for (size_t i = 0; i < b->n; i++) {
                if (!b->ok[i])
                        continue;
                ew_addf(w, "%s", any ? ", " : "searched ");
                ew_addv(w, b->path[i]);
                ew_addf(w, "/%s", rel);
                any = true;
        }
        ew_no_conda(w, b, any);
        return -ENOENT;
}

static int resolve_prefix(const char *value, const struct bases *b, struct envact_plan *p, struct errw *w) {
        char meta[ENVACT_PATH_MAX];
        int r = path_clean(p->target, value);
        if (r < 0) {
                ew_addf(w, "invalid conda prefix '");
                ew_addv(w, value);
                ew_addf(w, "': must be an absolute path");
                return -EINVAL;
        }
        r = path_join(meta, p->target, "conda-meta");
        if (r < 0 || !is_dir(meta)) {
                ew_addf(w, "conda env prefix '");
                ew_addv(w, p->target);
                ew_addf(w, "' not found; searched ");
                ew_addv(w, r < 0 ? p->target : meta);
                return r < 0 ? r : -ENOENT;
        }
        int i = bases_first(b);
        if (i < 0) {
                ew_addf(w, "conda env prefix '");
                ew_addv(w, p->target);
                ew_addf(w, "' has no conda to activate it; ");
                ew_no_conda(w, b, false);
                return -ENOENT;
        }
        return set_conda_sh(p, b->path[i]);
}

static int resolve_venv(const char *value, struct envact_plan *p, struct errw *w) {
        int r = path_clean(p->target, value);
        if (r < 0) {
                ew_addf(w, "invalid venv path '");
                ew_addv(w, value);
                ew_addf(w, "': must be an absolute path");
                return -EINVAL;
        }
        r = path_join(p->activate, p->target, "bin/activate");
        if (r < 0 || !is_file(p->activate)) {
                ew_addf(w, "venv '");
                ew_addv(w, p->target);
                ew_addf(w, "' not found; searched ");
                ew_addv(w, r < 0 ? p->target : p->activate);
                return r < 0 ? r : -ENOENT;
        }
        return 0;
}

int envact_resolve(const struct env_spec *spec, const struct envact_search *s, struct envact_plan *ret, char *err,
                   size_t errlen) {
        struct errw w;
        ew_init(&w, err, errlen);
        if (!spec || !ret)
                return -EINVAL;

        _cleanup_free_ struct envact_plan *p = calloc(1, sizeof *p);
        _cleanup_free_ struct bases *b = calloc(1, sizeof *b);
        if (!p || !b)
                return -ENOMEM;
        p->kind = spec->kind;

        int r;
        switch (spec->kind) {
        case ENV_NONE:
                r = 0;
                break;
        case ENV_CONDA:
        case ENV_CONDA_PREFIX:
                if (!spec->value) {
                        ew_addf(&w, "conda env not given");
                        return -EINVAL;
                }
                bases_find(s, b);
                r = spec->kind == ENV_CONDA ? resolve_conda(spec->value, b, p, &w)
                                            : resolve_prefix(spec->value, b, p, &w);
                break;
        case ENV_VENV:
                if (!spec->value) {
                        ew_addf(&w, "venv not given");
                        return -EINVAL;
                }
                r = resolve_venv(spec->value, p, &w);
                break;
        default:
                ew_addf(&w, "unknown environment kind %d", (int)spec->kind);
                return -EINVAL;
        }
        if (r < 0)
                return r;
        *ret = *p;
        return 0;
}

/* ---------------------------------------------------------------------------------------------- argv */

void envact_free_argv(char **argv) {
        if (!argv)
                return;
        for (char **a = argv; *a; a++)
                free(*a);
        free(argv);
}

int envact_command(const struct envact_plan *p, char *const *cmd, bool shell, char ***ret_argv) {
        if (!p || !cmd || !cmd[0] || !ret_argv)
                return -EINVAL;
        size_t ncmd = 0;
        while (cmd[ncmd])
                ncmd++;
        if (shell && ncmd != 1)
                return -EINVAL;

        const char *pre[9];
        size_t npre = 0;
        switch (p->kind) {
        case ENV_NONE:
                break;
        case ENV_CONDA:
        case ENV_CONDA_PREFIX:
        case ENV_VENV: {
                bool venv = p->kind == ENV_VENV;
                const char *file = venv ? p->activate : p->conda_sh;
                if (!file[0] || !p->target[0] || !memchr(file, 0, ENVACT_PATH_MAX) ||
                    !memchr(p->target, 0, ENVACT_PATH_MAX))
                        return -EINVAL;
                pre[npre++] = ENVACT_BASH;
                pre[npre++] = "--noprofile";
                pre[npre++] = "--norc";
                pre[npre++] = "-c";
                pre[npre++] = venv ? script_venv : script_conda;
                pre[npre++] = ENVACT_ARGV0;
                pre[npre++] = file;
                pre[npre++] = p->target;
                pre[npre++] = "--";
                break;
        }
        default:
                return -EINVAL;
        }
        const char *sh[] = { ENVACT_BASH, "-c", cmd[0] };
        size_t nuser = shell ? ARRAY_SIZE(sh) : ncmd;

        char **argv = calloc(npre + nuser + 1, sizeof *argv);
        if (!argv)
                return -ENOMEM;
        for (size_t i = 0; i < npre + nuser; i++) {
                const char *a = i < npre ? pre[i] : shell ? sh[i - npre] : cmd[i - npre];
                argv[i] = strdup(a);
                if (!argv[i]) {
                        envact_free_argv(argv);
                        return -ENOMEM;
                }
        }
        *ret_argv = argv;
        return 0;
}

int envact_exec_argv(const struct envact_plan *p, char *const *cmd, bool shell, char ***ret_argv) {
        char **argv = NULL;
        int r = envact_command(p, cmd, shell, &argv);
        if (r < 0)
                return r;
        if (strchr(argv[0], '/')) {
                *ret_argv = argv;
                return 0;
        }
        size_t n = 0;
        while (argv[n])
                n++;
        char **v = calloc(n + 2, sizeof *v);
        if (!v || !(v[0] = strdup("/usr/bin/env"))) {
                free(v);
                envact_free_argv(argv);
                return -ENOMEM;
        }
        for (size_t k = 0; k < n; k++)
                v[k + 1] = argv[k];
        free(argv);
        *ret_argv = v;
        return 0;
}

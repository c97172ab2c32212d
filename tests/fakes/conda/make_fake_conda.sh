#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# make_fake_conda.sh — build a fake conda installation (or a fake venv) that behaves like the real one for
# activation, per shared/platform/CONDA.md §5. Shell only; reused by unit, black-box and VM tests.
#
#   make_fake_conda.sh [--legacy-unset] [--home HOMEDIR] DIR
#       A conda root at DIR (DIR/bin/conda prints what `conda shell.posix activate|deactivate|reactivate|hook`
#       prints, DIR/etc/profile.d/conda.sh is that hook's output, DIR/envs/* are environments).
#       --legacy-unset: unsets print as `unset X` (conda <= 25.5) instead of `export X=''` (>= 25.7);
#         FAKE_CONDA_UNSET_STYLE=legacy|modern overrides it at run time.
#       --home HOMEDIR: also create HOMEDIR/.conda/envs/userenv (for the HOME-unset fallback).
#   make_fake_conda.sh --venv [--style main|3.11] DIR
#       A venv at DIR: pyvenv.cfg, bin/python, bin/activate in CPython-main or Python 3.11 (Debian) style.
#
# Layout of the conda root:
#   conda-meta/history                  marks DIR as a prefix (writable: envs dirs in default order)
#   bin/conda, condabin/conda           the fake conda executable (bash)
#   bin/activate, bin/deactivate        `source activate ENV` entry points
#   bin/python                          stub; `python -c '...sys.prefix...'` prints the prefix
#   etc/profile.d/conda.sh              CONDA_EXE exports + __conda_exe/__conda_activate/conda() functions
#   envs/pytorch                        conda-meta/history, bin/python, activate.d/cuda.sh (LD_LIBRARY_PATH,
#                                       CUDA_HOME, MAYFLY_FAKE_HOOK=ran), deactivate.d/cuda.sh
#   envs/pytorch_p310                   DLAMI style: activate.d/00_activate.sh (uses $HOME and the unset
#                                       $LD_LIBRARY_PATH_WITHOUT_CUDA), 10_x.sh, Z_upper.sh, a_lower.sh (byte vs
#                                       locale order), 99_marker.sh (echoes a marker), ignored README and .bat;
#                                       deactivate.d mirror; env_vars.d/pkg.json; conda-meta/state with a
#                                       "***unset***" value and a key duplicated from pkg.json
#   envs/tf2                            a second env (switching, stacking): MAYFLY_FAKE_TF=ran
#   envs/nometa                         no conda-meta: valid by name, rejected by path
#   other-envs/custom                   parent not named envs (CONDA_ENVS_PATH / .condarc envs_dirs)
# Every hook appends its name to MAYFLY_HOOK_ORDER (activate.d) or MAYFLY_UNHOOK_ORDER (deactivate.d).
set -eu

usage() { echo "usage: $0 [--legacy-unset] [--home HOMEDIR] DIR | $0 --venv [--style main|3.11] DIR" >&2; exit 2; }

mode=conda style=main unset_style=modern home=
while [ $# -gt 0 ]; do
        case $1 in
        --venv) mode=venv ;;
        --style) [ $# -ge 2 ] || usage; style=$2; shift ;;
        --style=*) style=${1#--style=} ;;
        --legacy-unset) unset_style=legacy ;;
        --home) [ $# -ge 2 ] || usage; home=$2; shift ;;
        --) shift; break ;;
        -*) usage ;;
        *) break ;;
        esac
        shift
done
[ $# -eq 1 ] || usage
case $style in main|3.11) ;; *) usage ;; esac

mkdir -p -- "$1"
DIR=$(cd -- "$1" && pwd -P)

# Single-quote a value for a generated bash file.
sq() { local s=$1; printf "'%s'" "${s//\'/\'\\\'\'}"; }

# Write $1 from stdin and make it executable when $2 is x.
put() {
        mkdir -p -- "$(dirname -- "$1")"
        cat >"$1"
        if [ "${2:-}" = x ]; then chmod 0755 "$1"; fi
}

python_stub() { # $1 = prefix, $2 = version
        { printf '#!/bin/sh\n# fake python of %s\n_FP_PREFIX=%s\n_FP_VERSION=%s\n' "$1" "$(sq "$1")" "$(sq "$2")"
          cat <<'EOF'
case "${1:-}" in
--version|-V) echo "Python $_FP_VERSION" ;;
-c) case "${2:-}" in *sys.prefix*) printf '%s\n' "$_FP_PREFIX" ;; esac ;;
*) echo "fake python $_FP_VERSION ($_FP_PREFIX): $*" ;;
esac
EOF
        } | put "$1/bin/python" x
}

hook() { # $1 = file, $2 = hook name, $3 = order variable; rest of the body on stdin
        { printf '# fake hook %s\nexport %s="${%s:+${%s} }%s"\n' "$2" "$3" "$3" "$3" "$2"; cat; } | put "$1"
}

# ----------------------------------------------------------------------------------------------------- venv
if [ "$mode" = venv ]; then
        name=$(basename -- "$DIR")
        python_stub "$DIR" 3.11.2
        ln -sf python "$DIR/bin/python3"
        put "$DIR/pyvenv.cfg" <<EOF
home = /usr/bin
include-system-site-packages = false
version = 3.11.2
executable = /usr/bin/python3.11
command = /usr/bin/python3 -m venv $DIR
EOF
        if [ "$style" = main ]; then
                # CPython main Lib/venv/scripts/common/activate: VIRTUAL_ENV_PROMPT always, PS1 not exported.
                { cat <<'EOF'
# This file must be used with "source bin/activate" *from bash*
# You cannot run it directly

deactivate () {
    # reset old environment variables
    if [ -n "${_OLD_VIRTUAL_PATH:-}" ] ; then
        PATH="${_OLD_VIRTUAL_PATH:-}"
        export PATH
        unset _OLD_VIRTUAL_PATH
    fi
    if [ -n "${_OLD_VIRTUAL_PYTHONHOME:-}" ] ; then
        PYTHONHOME="${_OLD_VIRTUAL_PYTHONHOME:-}"
        export PYTHONHOME
        unset _OLD_VIRTUAL_PYTHONHOME
    fi

    # Call hash to forget past locations.
    hash -r 2> /dev/null

    if [ -n "${_OLD_VIRTUAL_PS1:-}" ] ; then
        PS1="${_OLD_VIRTUAL_PS1:-}"
        unset _OLD_VIRTUAL_PS1
    fi

    unset VIRTUAL_ENV
    unset VIRTUAL_ENV_PROMPT
    if [ ! "${1:-}" = "nondestructive" ] ; then
    # Self destruct!
        unset -f deactivate
    fi
}

# unset irrelevant variables
deactivate nondestructive

# on Windows, a path can contain colons and backslashes and has to be converted:
case "$(uname)" in
    CYGWIN*|MSYS*|MINGW*)
EOF
                  printf '        VIRTUAL_ENV=$(cygpath %s)\n        export VIRTUAL_ENV\n        ;;\n' "$(sq "$DIR")"
                  printf '    *)\n        export VIRTUAL_ENV=%s\n        ;;\nesac\n\n' "$(sq "$DIR")"
                  cat <<'EOF'
_OLD_VIRTUAL_PATH="${PATH:-}"
PATH="$VIRTUAL_ENV/bin:${PATH:-}"
export PATH

EOF
                  printf 'VIRTUAL_ENV_PROMPT=%s\nexport VIRTUAL_ENV_PROMPT\n' "$(sq "$name")"
                  cat <<'EOF'

# unset PYTHONHOME if set
if [ -n "${PYTHONHOME:-}" ] ; then
    _OLD_VIRTUAL_PYTHONHOME="${PYTHONHOME:-}"
    unset PYTHONHOME
fi

if [ -z "${VIRTUAL_ENV_DISABLE_PROMPT:-}" ] ; then
    _OLD_VIRTUAL_PS1="${PS1:-}"
    PS1="(${VIRTUAL_ENV_PROMPT}) ${PS1:-}"
fi

# Call hash to forget past commands.
hash -r 2> /dev/null
EOF
                } | put "$DIR/bin/activate"
        else
                # Python 3.11.2 (Debian): VIRTUAL_ENV_PROMPT='(name) ' only in the prompt block, PS1 exported,
                # hash -r only under bash or zsh.
                { cat <<'EOF'
# This file must be used with "source bin/activate" *from bash*
# you cannot run it directly

deactivate () {
    # reset old environment variables
    if [ -n "${_OLD_VIRTUAL_PATH:-}" ] ; then
        PATH="${_OLD_VIRTUAL_PATH:-}"
        export PATH
        unset _OLD_VIRTUAL_PATH
    fi
    if [ -n "${_OLD_VIRTUAL_PYTHONHOME:-}" ] ; then
        PYTHONHOME="${_OLD_VIRTUAL_PYTHONHOME:-}"
        export PYTHONHOME
        unset _OLD_VIRTUAL_PYTHONHOME
    fi

    # This should detect bash and zsh, which have a hash command that must
    # be called to get it to forget past commands.
    if [ -n "${BASH:-}" -o -n "${ZSH_VERSION:-}" ] ; then
        hash -r 2> /dev/null
    fi

    if [ -n "${_OLD_VIRTUAL_PS1:-}" ] ; then
        PS1="${_OLD_VIRTUAL_PS1:-}"
        export PS1
        unset _OLD_VIRTUAL_PS1
    fi

    unset VIRTUAL_ENV
    unset VIRTUAL_ENV_PROMPT
    if [ ! "${1:-}" = "nondestructive" ] ; then
    # Self destruct!
        unset -f deactivate
    fi
}

# unset irrelevant variables
deactivate nondestructive

EOF
                  printf 'VIRTUAL_ENV=%s\nexport VIRTUAL_ENV\n' "$(sq "$DIR")"
                  cat <<'EOF'

_OLD_VIRTUAL_PATH="$PATH"
PATH="$VIRTUAL_ENV/bin:$PATH"
export PATH

# unset PYTHONHOME if set
# this will fail if PYTHONHOME is set to the empty string (which is bad anyway)
# could use `if (set -u; : $PYTHONHOME) ;` in bash
if [ -n "${PYTHONHOME:-}" ] ; then
    _OLD_VIRTUAL_PYTHONHOME="${PYTHONHOME:-}"
    unset PYTHONHOME
fi

if [ -z "${VIRTUAL_ENV_DISABLE_PROMPT:-}" ] ; then
    _OLD_VIRTUAL_PS1="${PS1:-}"
EOF
                  printf '    PS1=%s"${PS1:-}"\n    export PS1\n' "$(sq "($name) ")"
                  printf '    VIRTUAL_ENV_PROMPT=%s\n    export VIRTUAL_ENV_PROMPT\nfi\n' "$(sq "($name) ")"
                  cat <<'EOF'

# This should detect bash and zsh, which have a hash command that must
# be called to get it to forget past commands.
if [ -n "${BASH:-}" -o -n "${ZSH_VERSION:-}" ] ; then
    hash -r 2> /dev/null
fi
EOF
                } | put "$DIR/bin/activate"
        fi
        exit 0
fi

# ------------------------------------------------------------------------------------------- the conda executable
put "$DIR/conda-meta/history" </dev/null
{ printf '#!/bin/bash\n# fake conda (make_fake_conda.sh): prints what conda 26.x prints for shell.posix commands.\n'
  printf '_FC_ROOT=%s\n_FC_DEFAULT_UNSET_STYLE=%s\n' "$(sq "$DIR")" "$(sq "$unset_style")"
  cat <<'EOF'
_FC_EXE="$_FC_ROOT/bin/conda"
_FC_PY="$_FC_ROOT/bin/python"
_FC_VERSION=26.7.1
_fc_style=${FAKE_CONDA_UNSET_STYLE:-$_FC_DEFAULT_UNSET_STYLE}
_FC_OUT=()   # the command list, in conda's order

fc_die() { # conda's error shape: blank line, "Name: message", blank line on stderr; nothing on stdout; exit 1
        printf '\n%s\n' "$1" >&2
        [ -z "${2:-}" ] || printf '%s\n' "$2" >&2
        printf '\n' >&2
        exit 1
}

# conda's posix templates (no escaping: export %s='%s', %s='%s', . "%s")
fc_export() { _FC_OUT+=("export $1='$2'"); }
fc_set() { _FC_OUT+=("$1='$2'"); }
fc_unset() {
        if [ "$_fc_style" = legacy ]; then _FC_OUT+=("unset $1"); else _FC_OUT+=("export $1=''"); fi
}
fc_source() { _FC_OUT+=(". \"$1\""); }
fc_print() { [ ${#_FC_OUT[@]} -eq 0 ] || printf '%s\n' "${_FC_OUT[@]}"; }

fc_home() { # like Python's expanduser('~'): $HOME when set, else the passwd entry
        if [ -n "${HOME+x}" ]; then printf '%s' "$HOME"; else (unset HOME; printf '%s' ~); fi
}
fc_expand() { # expanduser + abspath (no symlink resolution), trailing slashes dropped
        local p=$1
        # shellcheck disable=SC2088  # a literal leading ~ is what is matched here
        case $p in "~") p=$(fc_home) ;; "~/"*) p=$(fc_home)/${p#"~/"} ;; esac
        case $p in /*) ;; *) p=$PWD/$p ;; esac
        while [ "${#p}" -gt 1 ] && [ "${p%/}" != "$p" ]; do p=${p%/}; done
        printf '%s' "$p"
}

fc_condarc_envs_dirs() { # envs_dirs (alias envs_path) lists from condarc files, simple YAML block lists only
        local f line in_list
        for f in /etc/conda/.condarc "$_FC_ROOT/.condarc" "$(fc_home)/.config/conda/.condarc" \
                 "$(fc_home)/.condarc" "${CONDARC:-}"; do
                [ -n "$f" ] && [ -f "$f" ] || continue
                in_list=
                while IFS= read -r line || [ -n "$line" ]; do
                        case $line in
                        envs_dirs:*|envs_path:*) in_list=1 ;;
                        [[:space:]]*-*) [ -z "$in_list" ] || { line=${line#*-}; line=${line#"${line%%[![:space:]]*}"};
                                                                printf '%s\n' "$line"; } ;;
                        *) in_list= ;;
                        esac
                done <"$f"
        done
}

fc_envs_dirs() { # CONDA_ENVS_PATH or condarc envs_dirs, then ROOT/envs and ~/.conda/envs (swapped if ROOT unwritable)
        local d seen=:
        {
                if [ -n "${CONDA_ENVS_PATH:-}" ]; then
                        local parts
                        IFS=: read -ra parts <<<"$CONDA_ENVS_PATH"
                        for d in "${parts[@]}"; do printf '%s\n' "$d"; done
                else
                        fc_condarc_envs_dirs
                fi
                if [ -w "$_FC_ROOT/conda-meta/history" ]; then
                        printf '%s\n' "$_FC_ROOT/envs" "$(fc_home)/.conda/envs"
                else
                        printf '%s\n' "$(fc_home)/.conda/envs" "$_FC_ROOT/envs"
                fi
        } | while IFS= read -r d; do
                [ -n "$d" ] || continue
                d=$(fc_expand "$d")
                case $seen in *":$d:"*) continue ;; esac
                seen="$seen$d:"
                printf '%s\n' "$d"
        done
}

fc_locate() { # NAME|PATH -> prefix on stdout, or conda's error
        local arg=$1 d
        case $arg in
        base|root) printf '%s' "$_FC_ROOT"; return ;;
        */*|*\\*)
                d=$(fc_expand "$arg")
                [ -d "$d/conda-meta" ] || fc_die "EnvironmentLocationNotFound: Not a conda environment: $d"
                printf '%s' "$d"; return ;;
        esac
        while IFS= read -r d; do
                if [ -d "$d/$arg" ]; then printf '%s' "$d/$arg"; return; fi
        done < <(fc_envs_dirs)
        fc_die "EnvironmentNameNotFound: Could not find conda environment: $arg" \
               "You can list all discoverable environments with \`conda info --envs\`."
}

fc_default_env() { # base for the root, the basename when the parent is named envs, else the full path
        if [ "$1" = "$_FC_ROOT" ]; then printf base
        elif [ "$(basename -- "$(dirname -- "$1")")" = envs ]; then basename -- "$1"
        else printf '%s' "$1"; fi
}

fc_prompt_modifier() {
        case ${CONDA_CHANGEPS1:-true} in [Ff]alse|[Nn]o|0|off) return ;; esac
        printf '(%s) ' "$(fc_default_env "$1")"
}

fc_scripts() { # $1 = prefix, $2 = activate|deactivate: *.sh regular files sorted by full path (byte order)
        local d="$1/etc/conda/$2.d" f
        [ -d "$d" ] || return 0
        for f in "$d"/* "$d"/.*; do
                case $f in *.sh) [ -f "$f" ] && printf '%s\n' "$f" ;; esac
        done | if [ "$2" = activate ]; then LC_ALL=C sort; else LC_ALL=C sort -r; fi
}

declare -A _FC_VARS=()
_FC_VAR_ORDER=()
fc_json_pairs() { # flat JSON string pairs of file $1 (inside "env_vars" when $2 is set): KEY<TAB>VALUE lines
        local s re='"([^"\\]*)"[[:space:]]*:[[:space:]]*"([^"\\]*)"'
        s=$(<"$1")
        if [ -n "${2:-}" ]; then
                case $s in *'"env_vars"'*) ;; *) return 0 ;; esac
                s=${s#*\"env_vars\"}; s=${s#*\{}; s=${s%%\}*}
        fi
        while [[ $s =~ $re ]]; do
                printf '%s\t%s\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
                s=${s#*"${BASH_REMATCH[0]}"}
        done
}
fc_env_vars() { # fills _FC_VARS/_FC_VAR_ORDER: env_vars.d/* (sorted), then conda-meta/state env_vars (warns on dups)
        local f k v
        declare -A pkg=()
        _FC_VARS=(); _FC_VAR_ORDER=()
        if [ -d "$1/etc/conda/env_vars.d" ]; then
                while IFS= read -r f; do
                        while IFS=$'\t' read -r k v; do
                                [ -n "${_FC_VARS[$k]+x}" ] || _FC_VAR_ORDER+=("$k")
                                _FC_VARS[$k]=$v; pkg[$k]=1
                        done < <(fc_json_pairs "$f")
                done < <(for f in "$1/etc/conda/env_vars.d"/* "$1/etc/conda/env_vars.d"/.*; do
                                 [ -f "$f" ] && printf '%s\n' "$f"; done | LC_ALL=C sort)
        fi
        if [ -f "$1/conda-meta/state" ]; then
                while IFS=$'\t' read -r k v; do
                        if [ -n "${pkg[$k]+x}" ]; then
                                echo "WARNING: duplicate env vars detected. Vars from the environment will overwrite those from packages." >&2
                                echo "variable $k duplicated" >&2
                        fi
                        [ -n "${_FC_VARS[$k]+x}" ] || _FC_VAR_ORDER+=("$k")
                        _FC_VARS[$k]=$v
                done < <(fc_json_pairs "$1/conda-meta/state" env_vars)
        fi
}

fc_path_replace() { # $1 = old bin (removed), $2 = new bin (put where the old one was, else in front); PATH on stdout
        local out='' e done='' parts=()
        [ -z "${PATH:-}" ] || IFS=: read -ra parts <<<"$PATH"
        for e in "${parts[@]}"; do
                if [ -n "$1" ] && [ "$e" = "$1" ]; then
                        [ -n "$done" ] || { [ -z "$2" ] || out=${out:+$out:}$2; done=1; }
                        continue
                fi
                out=${out:+$out:}$e
        done
        if [ -z "$done" ] && [ -n "$2" ]; then out=$2${out:+:$out}; fi
        printf '%s' "$out"
}
fc_first_path() { # PREFIX/bin [+ ROOT/condabin when SHLVL is 0/unset and no PATH entry ends in condabin] + PATH
        local e cb="$_FC_ROOT/condabin" parts=()
        [ -z "${PATH:-}" ] || IFS=: read -ra parts <<<"$PATH"
        for e in "${parts[@]}"; do case $e in *condabin) cb= ;; esac; done
        printf '%s' "$1/bin${cb:+:$cb}${PATH:+:$PATH}"
}

fc_ps1() { # $1 = new prompt modifier: PS1 with the current modifier removed, quotes escaped, new one in front
        local ps1=${PS1:-}
        case $ps1 in *POWERLINE_COMMAND*) return 1 ;; esac
        case ${CONDA_CHANGEPS1:-true} in [Ff]alse|[Nn]o|0|off) return 1 ;; esac
        [ -z "${CONDA_PROMPT_MODIFIER:-}" ] || ps1=${ps1//"$CONDA_PROMPT_MODIFIER"/}
        ps1=${ps1//\'/\'\"\'\"\'}
        fc_set PS1 "$1$ps1"
}

fc_tail_exports() {
        fc_export CONDA_EXE "$_FC_EXE"
        [ "$_fc_style" = legacy ] || fc_export _CONDA_EXE "$_FC_EXE"
        fc_export CONDA_PYTHON_EXE "$_FC_PY"
        [ "$_fc_style" = legacy ] || fc_export _CONDA_ROOT "$_FC_ROOT"
}

fc_env_var_exports() { # $1 = prefix, $2 = old SHLVL (for saving overwritten values)
        local k save
        fc_env_vars "$1"
        for k in "${_FC_VAR_ORDER[@]}"; do
                [ "$k" != PATH ] || continue
                [ "${_FC_VARS[$k]}" != '***unset***' ] || continue
                if [ -n "${!k+x}" ] && [ "${!k}" != "${_FC_VARS[$k]}" ]; then
                        echo "WARNING: overwriting environment variables set in the machine" >&2
                        echo "overwriting variable ${k}" >&2
                        save=__CONDA_SHLVL_${2}_$k
                        fc_export "$save" "${!k}"
                fi
                fc_export "$k" "${_FC_VARS[$k]}"
        done
}
fc_env_var_unsets() { # $1 = prefix, $2 = SHLVL being returned to
        local k save
        fc_env_vars "$1" 2>/dev/null
        for k in "${_FC_VAR_ORDER[@]}"; do
                [ "$k" != PATH ] || continue
                save=__CONDA_SHLVL_${2}_$k
                if [ -n "${!save+x}" ]; then
                        fc_export "$k" "${!save}"
                        fc_unset "$save"
                else
                        fc_unset "$k"
                fi
        done
}

fc_activate() { # [--stack|--no-stack] [ENV]
        local stack='' arg='' prefix old_prefix=${CONDA_PREFIX:-} shlvl=${CONDA_SHLVL:-0} f mod path
        while [ $# -gt 0 ]; do
                case $1 in
                --stack) stack=1 ;;
                --no-stack) stack=0 ;;
                -*) fc_die "ArgumentError: unknown option $1" ;;
                *) [ -z "$arg" ] || fc_die "ArgumentError: activate does not accept more than one argument: $*"; arg=$1 ;;
                esac
                shift
        done
        case $shlvl in ''|*[!0-9]*) shlvl=0 ;; esac
        if [ -z "$stack" ]; then
                stack=0
                case ${CONDA_AUTO_STACK:-0} in ''|*[!0-9]*) ;; *)
                        [ "${CONDA_AUTO_STACK:-0}" -gt 0 ] && [ "$shlvl" -le "$CONDA_AUTO_STACK" ] && stack=1 ;; esac
        fi
        prefix=$(fc_locate "${arg:-base}") || exit 1
        mod=$(fc_prompt_modifier "$prefix")
        if [ "$shlvl" -gt 0 ] && [ "$prefix" = "$old_prefix" ]; then
                fc_reactivate; return
        fi
        if [ "$shlvl" -gt 0 ] && [ "$stack" = 0 ] && [ -n "$old_prefix" ]; then
                while IFS= read -r f; do fc_source "$f"; done < <(fc_scripts "$old_prefix" deactivate)
        fi
        fc_unset _CE_M
        fc_unset _CE_CONDA
        fc_ps1 "$mod" || true
        if [ "$shlvl" -eq 0 ]; then path=$(fc_first_path "$prefix")
        elif [ "$stack" = 1 ]; then path=$prefix/bin${PATH:+:$PATH}
        else path=$(fc_path_replace "$old_prefix/bin" "$prefix/bin"); fi
        fc_export PATH "$path"
        fc_export CONDA_PREFIX "$prefix"
        fc_export CONDA_SHLVL "$((shlvl + 1))"
        fc_export CONDA_DEFAULT_ENV "$(fc_default_env "$prefix")"
        fc_export CONDA_PROMPT_MODIFIER "$mod"
        if [ "$shlvl" -gt 0 ]; then
                fc_export "CONDA_PREFIX_$shlvl" "$old_prefix"
                [ "$stack" = 0 ] || fc_export "CONDA_STACKED_$((shlvl + 1))" true
        fi
        fc_env_var_exports "$prefix" "$shlvl"
        fc_tail_exports
        while IFS= read -r f; do fc_source "$f"; done < <(fc_scripts "$prefix" activate)
}

fc_reactivate() {
        local prefix=${CONDA_PREFIX:-} shlvl=${CONDA_SHLVL:-0} f
        case $shlvl in ''|*[!0-9]*) shlvl=0 ;; esac
        [ "$shlvl" -gt 0 ] && [ -n "$prefix" ] || return 0
        while IFS= read -r f; do fc_source "$f"; done < <(fc_scripts "$prefix" deactivate)
        fc_ps1 "$(fc_prompt_modifier "$prefix")" || true
        fc_export PATH "$(fc_path_replace "$prefix/bin" "$prefix/bin")"
        fc_export CONDA_SHLVL "$shlvl"
        fc_export CONDA_PROMPT_MODIFIER "$(fc_prompt_modifier "$prefix")"
        fc_env_var_exports "$prefix" "$shlvl" 2>/dev/null
        fc_tail_exports
        while IFS= read -r f; do fc_source "$f"; done < <(fc_scripts "$prefix" activate)
}

fc_deactivate() {
        local prefix=${CONDA_PREFIX:-} shlvl=${CONDA_SHLVL:-0} f new old old_var stacked stacked_var path
        [ $# -eq 0 ] || fc_die "ArgumentError: deactivate does not accept arguments" "remainder_args: $*"
        case $shlvl in ''|*[!0-9]*) shlvl=0 ;; esac
        [ "$shlvl" -gt 0 ] || return 0
        new=$((shlvl - 1))
        while IFS= read -r f; do fc_source "$f"; done < <(fc_scripts "$prefix" deactivate)
        if [ "$new" -eq 0 ]; then
                fc_unset CONDA_PREFIX
                fc_unset CONDA_DEFAULT_ENV
                fc_unset CONDA_PROMPT_MODIFIER
                fc_env_var_unsets "$prefix" "$new"
                fc_ps1 "" || true
                fc_export PATH "$(fc_path_replace "$prefix/bin" "")"
                fc_export CONDA_SHLVL 0
                fc_tail_exports
                return 0
        fi
        old_var=CONDA_PREFIX_$new
        old=${!old_var:-$_FC_ROOT}
        stacked_var=CONDA_STACKED_$shlvl
        stacked=${!stacked_var:-}
        fc_unset "$old_var"
        [ -z "$stacked" ] || fc_unset "$stacked_var"
        fc_env_var_unsets "$prefix" "$new"
        fc_ps1 "$(fc_prompt_modifier "$old")" || true
        if [ "$stacked" = true ]; then path=$(fc_path_replace "$prefix/bin" "")
        else path=$(fc_path_replace "$prefix/bin" "$old/bin"); fi
        fc_export PATH "$path"
        fc_export CONDA_PREFIX "$old"
        fc_export CONDA_SHLVL "$new"
        fc_export CONDA_DEFAULT_ENV "$(fc_default_env "$old")"
        fc_export CONDA_PROMPT_MODIFIER "$(fc_prompt_modifier "$old")"
        fc_tail_exports
        while IFS= read -r f; do fc_source "$f"; done < <(fc_scripts "$old" activate)
}

fc_hook() { # the text of etc/profile.d/conda.sh, plus `conda activate 'base'` when auto-activation is on
        fc_export CONDA_EXE "$_FC_EXE"
        [ "$_fc_style" = legacy ] || fc_export _CONDA_EXE "$_FC_EXE"
        fc_export _CE_M ""
        fc_export _CE_CONDA ""
        fc_export CONDA_PYTHON_EXE "$_FC_PY"
        [ "$_fc_style" = legacy ] || fc_export _CONDA_ROOT "$_FC_ROOT"
        fc_print
        _FC_OUT=()
        cat <<'HOOK'

# Copyright (C) 2012 Anaconda, Inc
# SPDX-License-Identifier: BSD-3-Clause
# (fake conda: same functions and semantics as conda's shell/etc/profile.d/conda.sh)
__conda_exe() (
    if [ -n "${_CE_M:+x}" ] && [ -n "${_CE_CONDA:+x}" ]; then
        # only use _CE_M/_CE_CONDA when defined to avoid issues when run with `set -u`
        "$CONDA_EXE" $_CE_M $_CE_CONDA "$@"
    else
        "$CONDA_EXE" "$@"
    fi
)

__conda_hashr() {
    if [ -n "${ZSH_VERSION:+x}" ]; then
        \rehash
    elif [ -n "${POSH_VERSION:+x}" ]; then
        :  # pass
    else
        \hash -r
    fi
}

__conda_activate() {
    if [ -n "${CONDA_PS1_BACKUP:+x}" ]; then
        # Handle transition from shell activated with conda <= 4.3 to a subsequent activation
        # after conda updated to >= 4.4. See issue #6173.
        PS1="$CONDA_PS1_BACKUP"
        \unset CONDA_PS1_BACKUP
    fi
    \local ask_conda
    ask_conda="$(PS1="${PS1:-}" __conda_exe shell.posix "$@")" || \return
    \eval "$ask_conda"
    __conda_hashr
}

conda() {
    \local cmd="${1-__missing__}"
    case "$cmd" in
        activate|deactivate)
            __conda_activate "$@"
            ;;
        install|update|upgrade|remove|uninstall)
            __conda_exe "$@" || \return
            __conda_activate reactivate
            ;;
        *)
            __conda_exe "$@"
            ;;
    esac
}

if [ -z "${CONDA_SHLVL+x}" ]; then
    \export CONDA_SHLVL=0
    # In dev-mode CONDA_EXE is python.exe and on Windows
    # it is in a different relative location to condabin.
    if [ -n "${_CE_CONDA:+x}" ] && [ -n "${WINDIR+x}" ]; then
        PATH="$(\dirname "$CONDA_EXE")/condabin${PATH:+":${PATH}"}"
    else
        PATH="$(\dirname "$(\dirname "$CONDA_EXE")")/condabin${PATH:+":${PATH}"}"
    fi
    \export PATH

    # We're not allowing PS1 to be unbound. It must at least be set.
    # However, we're not exporting it, which can cause problems when starting a second shell
    # via a first shell (i.e. starting zsh from bash).
    if [ -z "${PS1+x}" ]; then
        PS1=
    fi
fi
HOOK
        case ${CONDA_AUTO_ACTIVATE:-${CONDA_AUTO_ACTIVATE_BASE:-false}} in
        [Tt]rue|[Yy]es|1|on) echo "conda activate 'base'" ;;
        esac
}

fc_run() { # run [-n NAME|-p PREFIX] [--no-capture-output|--live-stream] [--cwd DIR] CMD...: not exec'd
        local target=${CONDA_PREFIX:-$_FC_ROOT} capture=1 cwd='' prefix script rc out err f
        while [ $# -gt 0 ]; do
                case $1 in
                -n|--name) [ $# -ge 2 ] || fc_die "ArgumentError: $1 needs a value"; target=$2; shift ;;
                -p|--prefix) [ $# -ge 2 ] || fc_die "ArgumentError: $1 needs a value"; target=$(fc_expand "$2"); shift ;;
                --no-capture-output|--live-stream) capture= ;;
                --cwd) [ $# -ge 2 ] || fc_die "ArgumentError: $1 needs a value"; cwd=$2; shift ;;
                --) shift; break ;;
                -*) fc_die "ArgumentError: unknown option $1" ;;
                *) break ;;
                esac
                shift
        done
        [ $# -gt 0 ] || fc_die "ArgumentError: No command specified"
        prefix=$(fc_locate "$target") || exit 1
        script=$(mktemp "${TMPDIR:-/tmp}/tmp.XXXXXXXX") || exit 1
        {
                printf 'eval "$(%q shell.posix hook)"\n' "$_FC_EXE"
                printf 'conda activate %q\n' "$prefix"
                printf '%q ' "$@"; printf '\n'
                printf '_CONDA_EXE_RC=$?\n'
                while IFS= read -r f; do printf '. %q\n' "$f"; done < <(fc_scripts "$prefix" deactivate)
                printf 'exit $_CONDA_EXE_RC\n'
        } >"$script"
        if [ -n "$capture" ]; then
                out=$(mktemp "${TMPDIR:-/tmp}/tmp.XXXXXXXX") err=$(mktemp "${TMPDIR:-/tmp}/tmp.XXXXXXXX")
                ( [ -z "$cwd" ] || cd -- "$cwd" || exit 1; bash "$script" ) >"$out" 2>"$err"
                rc=$?
                cat -- "$out"; cat -- "$err" >&2
                rm -f -- "$out" "$err"
        else
                ( [ -z "$cwd" ] || cd -- "$cwd" || exit 1; bash "$script" )
                rc=$?
        fi
        rm -f -- "$script"
        [ "$rc" -eq 0 ] || printf 'ERROR conda.cli.main_run:execute(127): `conda run %s` failed. (See above for error)\n' "$*" >&2
        return "$rc"
}

fc_env_list() {
        local d e
        printf '# conda environments:\n#\n'
        printf '%-24s %s\n' base "$_FC_ROOT"
        while IFS= read -r d; do
                for e in "$d"/*/; do
                        [ -d "$e" ] || continue
                        e=${e%/}
                        printf '%-24s %s\n' "$(basename -- "$e")" "$e"
                done
        done < <(fc_envs_dirs)
}

case ${1:-} in
shell.posix|shell.bash|shell.sh|shell.zsh|shell.dash)
        sub=${2:-}
        shift 2 || shift $#
        case $sub in
        activate) fc_activate "$@" ;;
        deactivate) fc_deactivate "$@" ;;
        reactivate) fc_reactivate ;;
        hook) fc_hook; exit 0 ;;
        *) fc_die "ArgumentError: unknown shell command: $sub" ;;
        esac
        fc_print
        ;;
activate|deactivate) fc_die "CondaError: Run 'conda init' before 'conda $1'" ;;
run) shift; fc_run "$@"; exit $? ;;
info)
        case ${2:-} in
        --base) printf '%s\n' "$_FC_ROOT" ;;
        --envs|-e) fc_env_list ;;
        *) printf '     active environment : %s\n    active env location : %s\n       base environment : %s\n          conda version : %s\n' \
                "${CONDA_DEFAULT_ENV:-None}" "${CONDA_PREFIX:-None}" "$_FC_ROOT" "$_FC_VERSION" ;;
        esac ;;
env) case ${2:-} in list) fc_env_list ;; *) fc_die "fake conda: 'env ${2:-}' is not implemented" ;; esac ;;
--version|-V) echo "conda $_FC_VERSION" ;;
'') echo "usage: conda [-h] [-v] [--no-plugins] [-V] COMMAND ..." >&2; exit 2 ;;
*) fc_die "fake conda: '$1' is not implemented" ;;
esac
EOF
} | put "$DIR/bin/conda" x
mkdir -p "$DIR/condabin"
cp -p "$DIR/bin/conda" "$DIR/condabin/conda"
python_stub "$DIR" 3.12.7

# etc/profile.d/conda.sh is the hook's output with auto-activation off (conda's install_conda_sh).
mkdir -p "$DIR/etc/profile.d"
env -u CONDA_AUTO_ACTIVATE -u CONDA_AUTO_ACTIVATE_BASE FAKE_CONDA_UNSET_STYLE="$unset_style" \
        "$DIR/bin/conda" shell.posix hook >"$DIR/etc/profile.d/conda.sh"

for w in activate deactivate; do
        { printf '#!/bin/sh\n_CONDA_ROOT="%s"\n' "$DIR"
          cat <<'EOF'
# Copyright (C) 2012 Anaconda, Inc
# SPDX-License-Identifier: BSD-3-Clause
\. "$_CONDA_ROOT/etc/profile.d/conda.sh" || return $?
EOF
          if [ $w = activate ]; then echo 'conda activate "$@"'; else echo 'conda deactivate'; fi
        } | put "$DIR/bin/$w" x
done

# ---------------------------------------------------------------------------------------------- environments
E=$DIR/envs/pytorch
put "$E/conda-meta/history" <<<'==> 2024-11-20 10:00:00 <=='
python_stub "$E" 3.11.9
hook "$E/etc/conda/activate.d/cuda.sh" cuda.sh MAYFLY_HOOK_ORDER <<'EOF'
export MAYFLY_FAKE_HOOK=ran
export CUDA_HOME=/usr/local/cuda-12.4
export LD_LIBRARY_PATH="/usr/local/cuda-12.4/lib64:/usr/local/cuda-12.4/extras/CUPTI/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
EOF
hook "$E/etc/conda/deactivate.d/cuda.sh" cuda.sh MAYFLY_UNHOOK_ORDER <<'EOF'
unset MAYFLY_FAKE_HOOK CUDA_HOME
EOF

E=$DIR/envs/pytorch_p310
put "$E/conda-meta/history" <<<'==> 2023-05-02 10:00:00 <=='
put "$E/conda-meta/state" <<'EOF'
{
  "env_vars": {
    "MF_STATE_VAR": "from-state",
    "MF_DUP": "from-state",
    "MF_GONE": "***unset***"
  }
}
EOF
put "$E/etc/conda/env_vars.d/pkg.json" <<'EOF'
{"MF_PKG_VAR": "from-pkg", "MF_DUP": "from-pkg"}
EOF
python_stub "$E" 3.10.14
A=$E/etc/conda/activate.d D=$E/etc/conda/deactivate.d
# DLAMI 00_activate.sh: depends on $HOME and on LD_LIBRARY_PATH_WITHOUT_CUDA (set by the login rc file, so unset
# under systemd: fatal under `set -u`).
hook "$A/00_activate.sh" 00_activate.sh MAYFLY_HOOK_ORDER <<'EOF'
export ENV_NAME=pytorch_p310
export PYTHON_VERSION=3.10
export LD_LIBRARY_PATH=/usr/local/cuda-12.1/lib64:/usr/local/cuda-12.1/extras/CUPTI/lib64:/usr/local/cuda-12.1/lib:$LD_LIBRARY_PATH_WITHOUT_CUDA
export CUDA_PATH=/usr/local/cuda-12.1
export MAYFLY_FAKE_KERAS="$HOME/.keras"
export MAYFLY_FAKE_HOOK=ran
EOF
hook "$A/10_x.sh" 10_x.sh MAYFLY_HOOK_ORDER </dev/null
hook "$A/Z_upper.sh" Z_upper.sh MAYFLY_HOOK_ORDER </dev/null
hook "$A/a_lower.sh" a_lower.sh MAYFLY_HOOK_ORDER </dev/null
hook "$A/99_marker.sh" 99_marker.sh MAYFLY_HOOK_ORDER <<'EOF'
echo "mayfly-fake-hook: activated pytorch_p310"
EOF
put "$A/05_windows.bat" <<<'@SET "MAYFLY_HOOK_ORDER=%MAYFLY_HOOK_ORDER% 05_windows.bat"'
put "$A/README" <<<'export MAYFLY_HOOK_ORDER=README  # not a .sh: conda ignores it'
hook "$D/00_deactivate.sh" 00_deactivate.sh MAYFLY_UNHOOK_ORDER <<'EOF'
unset ENV_NAME PYTHON_VERSION CUDA_PATH MAYFLY_FAKE_KERAS MAYFLY_FAKE_HOOK
EOF
hook "$D/10_x.sh" 10_x.sh MAYFLY_UNHOOK_ORDER </dev/null

E=$DIR/envs/tf2
put "$E/conda-meta/history" <<<'==> 2024-11-20 10:00:00 <=='
python_stub "$E" 3.10.14
hook "$E/etc/conda/activate.d/tf.sh" tf.sh MAYFLY_HOOK_ORDER <<<'export MAYFLY_FAKE_TF=ran'
hook "$E/etc/conda/deactivate.d/tf.sh" tf.sh MAYFLY_UNHOOK_ORDER <<<'unset MAYFLY_FAKE_TF'

python_stub "$DIR/envs/nometa" 3.9.19   # a plain directory: activatable by name only

E=$DIR/other-envs/custom
put "$E/conda-meta/history" <<<'==> 2024-11-20 10:00:00 <=='
python_stub "$E" 3.12.7

if [ -n "$home" ]; then
        mkdir -p -- "$home"
        E=$(cd -- "$home" && pwd -P)/.conda/envs/userenv
        put "$E/conda-meta/history" <<<'==> 2024-11-20 10:00:00 <=='
        python_stub "$E" 3.12.7
fi
exit 0

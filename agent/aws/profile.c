/* SPDX-License-Identifier: Apache-2.0 */
/* profile.c — ~/.aws/config and ~/.aws/credentials through libinih. */
#include "aws/profile.h"

#include <pwd.h>
#include <strings.h>

#include "util.h"

#ifdef MAYFLY_HAVE_INIH
#include <ini.h>
#endif


static void wipe_free(char *s) {
        if (s) {
                explicit_bzero(s, strlen(s));
                free(s);
        }
}

void profile_set_free(struct profile_set *s) {
        for (size_t i = 0; i < s->n; i++) {
                free(s->p[i].name);
                for (int k = 0; k < PK_N; k++)
                        wipe_free(s->p[i].v[k]);
        }
        s->n = 0;
}

const struct profile *profile_find(const struct profile_set *s, const char *name) {
        for (size_t i = 0; i < s->n; i++)
                if (strcmp(s->p[i].name, name) == 0)
                        return &s->p[i];
        return NULL;
}

const char *profile_get(const struct profile *p, enum profile_key k) {
        return p && p->v[k] && p->v[k][0] ? p->v[k] : NULL;
}

bool profile_has_credentials(const struct profile *p) {
        static const enum profile_key keys[] = { PK_ACCESS_KEY, PK_ROLE_ARN, PK_CREDENTIAL_PROCESS, PK_SSO_START_URL,
                                                 PK_SSO_SESSION, PK_WEB_IDENTITY_TOKEN_FILE };
        for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
                if (profile_get(p, keys[i]))
                        return true;
        return false;
}

const char *profile_selected(bool *explicit) {
        const char *n = env_nonempty("AWS_PROFILE");
        if (!n)
                n = env_nonempty("AWS_DEFAULT_PROFILE");
        if (explicit)
                *explicit = n != NULL;
        return n ? n : "default";
}

#ifdef MAYFLY_HAVE_INIH
static const char *const key_names[PK_N] = {
        [PK_ACCESS_KEY] = "aws_access_key_id",       [PK_SECRET_KEY] = "aws_secret_access_key",
        [PK_TOKEN] = "aws_session_token",            [PK_REGION] = "region",
        [PK_ROLE_ARN] = "role_arn",                  [PK_SOURCE_PROFILE] = "source_profile",
        [PK_CREDENTIAL_SOURCE] = "credential_source", [PK_CREDENTIAL_PROCESS] = "credential_process",
        [PK_ROLE_SESSION_NAME] = "role_session_name", [PK_EXTERNAL_ID] = "external_id",
        [PK_DURATION_SECONDS] = "duration_seconds",  [PK_MFA_SERIAL] = "mfa_serial",
        [PK_SSO_START_URL] = "sso_start_url",        [PK_SSO_SESSION] = "sso_session",
        [PK_WEB_IDENTITY_TOKEN_FILE] = "web_identity_token_file",
};

/* Debian's libinih is built with a 200-byte line buffer and no realloc, and a session token alone is ~1 KB. The
 * reader hands inih each longer "name = value" line as "name = \1N" and keeps the value aside; the handler takes
 * it back. Sections, comments, whitespace and continuation lines stay libinih's business. */
#define LONG_MAX_VALUES 64

struct reader {
        const char *text;
        size_t off, len;
        char *long_values[LONG_MAX_VALUES];
        size_t n_long;
        int error;                     /* -E2BIG: a value or a name too long even for this */
};

static char *read_line(char *str, int num, void *stream) {
        struct reader *r = stream;
        if (r->off >= r->len || num < 16)
                return NULL;
        const char *line = r->text + r->off;
        const char *nl = memchr(line, '\n', r->len - r->off);
        size_t n = nl ? (size_t)(nl - line) + 1 : r->len - r->off;
        r->off += n;
        if (n + 1 <= (size_t)num) {
                memcpy(str, line, n);
                str[n] = 0;
                return str;
        }
        size_t lead = strspn(line, " \t");
        if (line[lead] == ';' || line[lead] == '#') {
                snprintf(str, (size_t)num, "#\n"); /* a long comment */
                return str;
        }
        size_t name_len = strcspn(line, "=:\n");
        const char *v = line + name_len + 1, *e = line + n;
        if (name_len >= n || name_len + 8 > (size_t)num || r->n_long >= LONG_MAX_VALUES ||
            (size_t)(e - v) > PROFILE_VALUE_MAX) {
                r->error = -E2BIG;
                return NULL;
        }
        while (v < e && (*v == ' ' || *v == '\t'))
                v++;
        while (e > v && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
                e--;
        char *val = strndup(v, (size_t)(e - v));
        if (!val) {
                r->error = -ENOMEM;
                return NULL;
        }
        r->long_values[r->n_long] = val;
        snprintf(str, (size_t)num, "%.*s= \001%zu\n", (int)name_len, line, r->n_long++);
        return str;
}

struct parse {
        struct profile_set *s;
        struct reader *r;
        bool creds;
        int error;
};

static struct profile *profile_add(struct profile_set *s, const char *name) {
        struct profile *p = (struct profile *)profile_find(s, name);
        if (p || s->n >= PROFILE_MAX)
                return p;
        p = &s->p[s->n];
        *p = (struct profile){ .name = strdup(name) };
        if (!p->name)
                return NULL;
        s->n++;
        return p;
}

/* [default] and [profile NAME] in the config file (other sections, such as [sso-session X], are not profiles);
 * [NAME] in the credentials file. */
static const char *section_profile(const char *section, bool creds) {
        if (creds || strcmp(section, "default") == 0)
                return section;
        if (strncmp(section, "profile", 7) != 0 || (section[7] != ' ' && section[7] != '\t'))
                return NULL;
        section += 7;
        while (*section == ' ' || *section == '\t')
                section++;
        return *section ? section : NULL;
}

static int on_setting(void *user, const char *section, const char *name, const char *value) {
        struct parse *ps = user;
        const char *pname = section_profile(section, ps->creds);
        int k = 0;
        while (k < PK_N && strcmp(key_names[k], name) != 0)
                k++;
        if (!pname || !*pname || k == PK_N)
                return 1;
        if (value[0] == '\001') {
                size_t i;
                uint64_t u;
                if (parse_u64(value + 1, &u) < 0 || (i = (size_t)u) >= ps->r->n_long)
                        return 0;
                value = ps->r->long_values[i];
        }
        struct profile *p = profile_add(ps->s, pname);
        char *v = p ? strdup(value) : NULL;
        if (!v) {
                ps->error = p ? -ENOMEM : -E2BIG;
                return 0;
        }
        wipe_free(p->v[k]);
        p->v[k] = v;
        p->from_credentials[k] = ps->creds;
        return 1;
}

int profile_parse(struct profile_set *s, const char *text, bool is_credentials, char *err, size_t errlen) {
        struct reader r = { .text = text, .len = strlen(text) };
        struct parse ps = { .s = s, .r = &r, .creds = is_credentials };
        int line = ini_parse_stream(read_line, &r, on_setting, &ps);
        for (size_t i = 0; i < r.n_long; i++)
                wipe_free(r.long_values[i]);
        const char *what = is_credentials ? s->credentials_path : s->config_path;
        if (r.error || ps.error == -E2BIG) {
                errf(err, errlen, "%s: %s", what[0] ? what : "AWS config",
                     r.error == -E2BIG ? "a setting longer than 8 KiB" : "more than 64 profiles");
                return -EINVAL;
        }
        if (ps.error)
                return ps.error;
        if (line != 0) {
                errf(err, errlen, "%s: line %d is neither [section] nor name = value", what[0] ? what : "AWS config",
                     line);
                return -EINVAL;
        }
        return 0;
}

static void expand_path(const char *env, const char *dflt, char *out, size_t n) {
        const char *p = env_nonempty(env);
        if (!p)
                p = dflt;
        if (p[0] == '~' && p[1] == '/') {
                const char *home = env_nonempty("HOME");
                struct passwd *pw = home ? NULL : getpwuid(getuid());
                snprintf(out, n, "%s%s", home ? home : pw && pw->pw_dir ? pw->pw_dir : "", p + 1);
        } else
                snprintf(out, n, "%s", p);
}

static int load_one(struct profile_set *s, const char *path, bool creds, char *err, size_t errlen) {
        char *text = NULL;
        size_t len = 0;
        int r = read_file_capped(path, PROFILE_FILE_MAX, &text, &len);
        if (r == -ENOENT || r == -ENOTDIR)
                return 0;
        if (r < 0) {
                errf(err, errlen, "cannot read %s: %s", path, r == -EFBIG ? "larger than 1 MiB" : strerror(-r));
                return r == -EFBIG ? -EINVAL : r;
        }
        if (memchr(text, 0, len)) {
                errf(err, errlen, "%s: not a text file", path);
                r = -EINVAL;
        } else
                r = profile_parse(s, text, creds, err, errlen);
        explicit_bzero(text, len);
        free(text);
        return r;
}

int profile_load(struct profile_set *s, char *err, size_t errlen) {
        expand_path("AWS_CONFIG_FILE", "~/.aws/config", s->config_path, sizeof s->config_path);
        expand_path("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials", s->credentials_path,
                    sizeof s->credentials_path);
        int r = load_one(s, s->config_path, false, err, errlen);
        return r < 0 ? r : load_one(s, s->credentials_path, true, err, errlen);
}
#else
int profile_parse(struct profile_set *s, const char *text, bool is_credentials, char *err, size_t errlen) {
        errf(err, errlen, "this mayfly is built without libinih and reads no AWS config files");
        return -ENOTSUP;
}

int profile_load(struct profile_set *s, char *err, size_t errlen) { return -ENOTSUP; }
#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* chain.c — a profile's credentials, resolved when first needed and again before they expire. */
#include "aws/chain.h"

#include "aws/credproc.h"
#include "aws/profile.h"
#include "aws/sts.h"

struct chain {
        struct aws_ctx *c;
        struct profile_set set;
        char name[128];
};

static int static_keys(const struct profile *p, struct aws_creds *ret, char *err, size_t errlen) {
        const char *ak = profile_get(p, PK_ACCESS_KEY), *sk = profile_get(p, PK_SECRET_KEY);
        if (!ak || !sk) {
                errf(err, errlen, "profile %s has aws_access_key_id without aws_secret_access_key (or the reverse)",
                     p->name);
                return -MF_EAUTH;
        }
        struct aws_creds c = { .access_key = (char *)ak, .secret_key = (char *)sk,
                               .token = (char *)profile_get(p, PK_TOKEN) };
        return aws_creds_copy(&c, ret);
}

/* credential_source = Ec2InstanceMetadata | Environment: the role's source credentials from outside the files. */
static int credential_source(struct chain *ch, const struct profile *p, const char *src, struct aws_creds *ret,
                             char *err, size_t errlen) {
        if (strcmp(src, "Ec2InstanceMetadata") == 0) {
                struct creds_provider role; /* the environment has no keys, or the chain would not be walked */
                int r = creds_init(&role, &ch->c->imds);
                if (r == 0)
                        r = creds_get(&role, now_wall(), ret, err, errlen);
                creds_free(&role);
                return r;
        }
        if (strcmp(src, "Environment") == 0) {
                const char *ak = env_nonempty("AWS_ACCESS_KEY_ID"), *sk = env_nonempty("AWS_SECRET_ACCESS_KEY");
                if (!ak || !sk) {
                        errf(err, errlen, "profile %s: credential_source = Environment, but AWS_ACCESS_KEY_ID or "
                                          "AWS_SECRET_ACCESS_KEY is unset", p->name);
                        return -MF_EAUTH;
                }
                struct aws_creds c = { .access_key = (char *)ak, .secret_key = (char *)sk,
                                       .token = (char *)env_nonempty("AWS_SESSION_TOKEN") };
                return aws_creds_copy(&c, ret);
        }
        errf(err, errlen, "profile %s: credential_source = %s is not supported (Ec2InstanceMetadata, Environment)",
             p->name, src);
        return -MF_EAUTH;
}

static int resolve(struct chain *ch, const char *name, int depth, struct aws_creds *ret, char *err, size_t errlen);

static int assume(struct chain *ch, const struct profile *p, int depth, struct aws_creds *ret, char *err,
                  size_t errlen) {
        const char *role = profile_get(p, PK_ROLE_ARN), *sp = profile_get(p, PK_SOURCE_PROFILE);
        const char *cs = profile_get(p, PK_CREDENTIAL_SOURCE), *dur = profile_get(p, PK_DURATION_SECONDS);
        struct sts_assume a = { .role_arn = role, .session_name = profile_get(p, PK_ROLE_SESSION_NAME),
                                .external_id = profile_get(p, PK_EXTERNAL_ID) };
        if (profile_get(p, PK_MFA_SERIAL)) {
                errf(err, errlen, "profile %s needs an MFA code (mfa_serial), which mayfly cannot ask for: use a profile "
                                  "with credential_process = aws configure export-credentials --profile %s --format "
                                  "process", p->name, p->name);
                return -MF_EAUTH;
        }
        if (!!sp == !!cs) {
                errf(err, errlen, "profile %s has role_arn and needs exactly one of source_profile and "
                                  "credential_source", p->name);
                return -MF_EAUTH;
        }
        if (dur && parse_int(dur, 900, 43200, &a.duration) < 0) {
                errf(err, errlen, "profile %s: duration_seconds must be 900..43200", p->name);
                return -MF_EAUTH;
        }
        struct aws_creds src = { 0 };
        int r = cs ? credential_source(ch, p, cs, &src, err, errlen)
                : strcmp(sp, p->name) == 0 ? static_keys(p, &src, err, errlen) /* its own keys */
                                           : resolve(ch, sp, depth + 1, &src, err, errlen);
        if (r == 0)
                r = sts_assume_role(ch->c, &src, &a, ret, err, errlen);
        aws_creds_clear(&src);
        return r;
}

/* The AWS CLI's order for one profile: AssumeRole, the credentials file's keys, credential_process, the config
 * file's keys. */
static int resolve(struct chain *ch, const char *name, int depth, struct aws_creds *ret, char *err, size_t errlen) {
        const struct profile *p = profile_find(&ch->set, name);
        if (depth > CHAIN_MAX_DEPTH) {
                errf(err, errlen, "profile %s: more than %d source_profile hops (a loop?)", name, CHAIN_MAX_DEPTH);
                return -MF_EAUTH;
        }
        if (!p) {
                errf(err, errlen, "profile %s is in neither %s nor %s", name, ch->set.config_path,
                     ch->set.credentials_path);
                return -MF_EAUTH;
        }
        if (profile_get(p, PK_ROLE_ARN))
                return assume(ch, p, depth, ret, err, errlen);
        if (profile_get(p, PK_ACCESS_KEY) && p->from_credentials[PK_ACCESS_KEY])
                return static_keys(p, ret, err, errlen);
        if (profile_get(p, PK_CREDENTIAL_PROCESS))
                return credproc_run(profile_get(p, PK_CREDENTIAL_PROCESS), ret, err, errlen);
        if (profile_get(p, PK_ACCESS_KEY))
                return static_keys(p, ret, err, errlen);
        if (profile_get(p, PK_SSO_START_URL) || profile_get(p, PK_SSO_SESSION))
                errf(err, errlen, "profile %s uses IAM Identity Center (sso_*), which mayfly does not read: give it "
                                  "credential_process = aws configure export-credentials --profile %s --format process "
                                  "in another profile", name, name);
        else if (profile_get(p, PK_WEB_IDENTITY_TOKEN_FILE))
                errf(err, errlen, "profile %s: web_identity_token_file is not supported", name);
        else
                errf(err, errlen, "profile %s has no credentials (aws_access_key_id, credential_process or role_arn)",
                     name);
        return -MF_EAUTH;
}

static int fetch(void *ud, struct aws_creds *ret, char *err, size_t errlen) {
        struct chain *ch = ud;
        if (ch->c->config_r < 0) {
                errf(err, errlen, "%s", ch->c->config_err);
                return ch->c->config_r;
        }
        return resolve(ch, ch->name, 0, ret, err, errlen);
}

static int chain_setup(struct aws_ctx *c) {
        if (c->creds.fixed)
                return 0;
        struct chain *ch = calloc(1, sizeof *ch);
        if (!ch)
                return -ENOMEM;
        ch->c = c;
        c->chain = ch;
        bool explicit;
        snprintf(ch->name, sizeof ch->name, "%s", profile_selected(&explicit));
        int r = profile_load(&ch->set, c->config_err, sizeof c->config_err);
        if (r == -ENOTSUP && !explicit)
                return 0; /* built without libinih: straight to the instance role */
        if (r == -ENOTSUP)
                snprintf(c->config_err, sizeof c->config_err, "AWS_PROFILE=%s, but this mayfly (the static build) "
                         "reads no ~/.aws files: export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", ch->name);
        const struct profile *p = r < 0 ? NULL : profile_find(&ch->set, ch->name);
        if (r == 0 && !p && explicit) {
                errf(c->config_err, sizeof c->config_err, "%s names profile %s, which is in neither %s nor %s",
                         env_nonempty("AWS_PROFILE") ? "AWS_PROFILE" : "AWS_DEFAULT_PROFILE", ch->name,
                         ch->set.config_path, ch->set.credentials_path);
                r = -MF_EAUTH;
        }
        if (r < 0) {
                c->config_r = r == -ENOTSUP || r == -EINVAL ? -MF_EAUTH : r;
                creds_set_source(&c->creds, fetch, ch);
                return 0;
        }
        if (!c->region[0] && profile_get(p, PK_REGION))
                snprintf(c->region, sizeof c->region, "%s", profile_get(p, PK_REGION));
        if (p && (explicit || profile_has_credentials(p)))
                creds_set_source(&c->creds, fetch, ch);
        return 0;
}

static void chain_free(struct aws_ctx *c) {
        if (!c->chain)
                return;
        profile_set_free(&c->chain->set);
        free(c->chain);
        c->chain = NULL;
}

int aws_ctx_init(struct aws_ctx *c) {
        int r = aws_ctx_init_base(c);
        if (r < 0)
                return r;
        c->cleanup = chain_free;
        return chain_setup(c);
}

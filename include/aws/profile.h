/* SPDX-License-Identifier: Apache-2.0 */
/* profile.h — the AWS shared config and credentials files (~/.aws/config, ~/.aws/credentials), read with libinih
 * the way the AWS CLI reads them: [default] and [profile NAME] in the config file, [NAME] in the credentials file,
 * a profile's settings merged with the credentials file winning. Built without libinih (the static build), no file
 * is read. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#define PROFILE_MAX 64                  /* profiles kept from both files */
#define PROFILE_FILE_MAX (1u << 20)     /* each file */
#define PROFILE_VALUE_MAX 8192          /* one setting (a session token is ~1 KB) */

/* The settings mayfly acts on (others, such as output or s3 = …, are ignored). */
enum profile_key {
        PK_ACCESS_KEY,           /* aws_access_key_id */
        PK_SECRET_KEY,           /* aws_secret_access_key */
        PK_TOKEN,                /* aws_session_token */
        PK_REGION,
        PK_ROLE_ARN,
        PK_SOURCE_PROFILE,
        PK_CREDENTIAL_SOURCE,
        PK_CREDENTIAL_PROCESS,
        PK_ROLE_SESSION_NAME,
        PK_EXTERNAL_ID,
        PK_DURATION_SECONDS,
        PK_MFA_SERIAL,
        PK_SSO_START_URL,
        PK_SSO_SESSION,
        PK_WEB_IDENTITY_TOKEN_FILE,
        PK_N,
};

struct profile {
        char *name;
        char *v[PK_N];
        bool from_credentials[PK_N];    /* the value came from the credentials file */
};

struct profile_set {
        struct profile p[PROFILE_MAX];
        size_t n;
        char config_path[512];          /* for messages */
        char credentials_path[512];
};

/* Pure: adds the profiles of one file's text (config file: is_credentials false). 0, or -EINVAL with the line. */
int profile_parse(struct profile_set *s, const char *text, bool is_credentials, char *err, size_t errlen);
/* Reads AWS_CONFIG_FILE (~/.aws/config) and AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials); a missing file is
 * no error. -ENOTSUP when built without libinih. */
int profile_load(struct profile_set *s, char *err, size_t errlen);
/* Wipes the secrets and frees everything. */
void profile_set_free(struct profile_set *s);
const struct profile *profile_find(const struct profile_set *s, const char *name);
const char *profile_get(const struct profile *p, enum profile_key k);
/* The profile in use: AWS_PROFILE, else AWS_DEFAULT_PROFILE, else "default"; *explicit says a variable named it. */
const char *profile_selected(bool *explicit);
/* Whether a profile says anything about credentials (keys, a role, a process, SSO, web identity). */
bool profile_has_credentials(const struct profile *p);

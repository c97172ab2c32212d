/* SPDX-License-Identifier: Apache-2.0 */
/* userdata.h — rendering EC2 user-data (#cloud-config) for a job. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "aws/sigv4.h"
#include "util.h"

#define USERDATA_MAX_RAW 16384           /* EC2: 16 KB raw, before base64 */
#define USERDATA_MAX_ENV 64
#define USERDATA_BACKSTOP_MARGIN (45 * 60)
#define USERDATA_MARGIN_MIN 60
#define USERDATA_MARGIN_MAX (7 * 86400)
#define USERDATA_BOOT_ALLOWANCE (5 * 60) /* boot, install and fetch before max_runtime starts counting */

#define USERDATA_INSTALL_USAGE "--install must be preinstalled, deb=SRC, rpm=SRC or binary=SRC, SRC an http(s) URL or " \
        "s3://BUCKET/KEY (key of letters, digits and . _ ~ / -)"

enum install_route { INSTALL_PREINSTALLED, INSTALL_DEB, INSTALL_RPM, INSTALL_BINARY };

struct userdata_opts {
        enum install_route route;
        const char *url;                 /* https://…, http://… or s3://BUCKET/KEY */
        const char *sha256;
        const char *region;              /* the bucket's region for an s3:// url (NULL: the instance's) */
        const char *const *env;          /* KEY=VALUE lines for /etc/mayfly/env */
        size_t n_env;
        long margin;                     /* backstop = max_runtime + margin */
        bool margin_given;               /* --backstop-margin was used: render checks it against the job */
        char *warning;                   /* out, optional: one line when the margin looks too short or unused */
        size_t warning_len;
};

/* Pure: the skeleton without its comment and blank lines, each ${jsonencode(NAME)} replaced by the value as a JSON
 * string and each ${NAME} by the value as it is (Terraform's template syntax). -EINVAL for a name not in vals. */
int userdata_fill(const char *skeleton, const struct kv *vals, size_t n, struct buf *out);
/* Pure: the #cloud-config text. -EPERM when the job holds credentials, -EINVAL for a bad job. */
int userdata_render(const char *job_text, size_t job_len, const struct userdata_opts *o, char **ret, size_t *ret_len,
                    char *err, size_t errlen);
/* 1 when text holds something that looks like AWS credentials (what names it). */
int userdata_find_secret(const char *text, char *what, size_t n);
int userdata_gzip(const char *in, size_t len, char **ret, size_t *ret_len);
/* --install preinstalled|deb=SRC|rpm=SRC|binary=SRC: SRC http(s) (no quotes, backslashes or spaces) or
 * s3://BUCKET/KEY (a key of letters, digits and . _ ~ / -). */
int userdata_parse_install(const char *s, struct userdata_opts *o);
/* A route other than preinstalled needs a 64-hex-digit --sha256 (message printed). */
int userdata_check_sha256(const struct userdata_opts *o);
/* --backstop-margin DURATION (1m..7d, job duration syntax) into o->margin (message printed on failure). */
int userdata_set_margin(const char *s, struct userdata_opts *o);
int cmd_userdata(int argc, char **argv);

/* SPDX-License-Identifier: Apache-2.0 */
/* expcreds.h — the experiment's own AWS credentials, never the instance role's: the agent assumes a role with STS
 * (the job's experiment_role, else the instance role itself narrowed by a session policy to reading the job's source
 * and writing the run's outputs/) and serves the temporary keys on loopback the way every AWS SDK and the CLI read
 * them from a container credentials provider: AWS_CONTAINER_CREDENTIALS_FULL_URI (http://127.0.0.1:PORT/…) with
 * AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE). Refreshed 15 minutes before they expire. It fails closed: when the
 * AssumeRole is refused the experiment gets no credentials at all, never the instance role's. */
#pragma once
#include <pthread.h>
#include <stdbool.h>

#include "aws/aws.h"

#define EXPCREDS_PATH "/v1/credentials"
#define EXPCREDS_MAX_REQUEST 8192

struct expcreds {
        struct aws_ctx *c;
        char role_arn[2048];
        char *policy;                 /* the session policy, NULL: none (an experiment_role is its own policy) */
        char session[64];
        pthread_mutex_t lock;         /* over cur and last_err, between the server thread and expcreds_stop */
        struct aws_creds cur;
        char last_err[512];
        char token[65];               /* what the experiment sends as Authorization (random, hex) */
        char url[80];                 /* http://127.0.0.1:PORT/v1/credentials */
        int lfd, efd;
        pthread_t th;
        bool running;
        unsigned long served, refused;
};

/* Pure: the role an assumed-role ARN (GetCallerIdentity's, arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION) is a
 * session of: arn:aws:iam::ACCOUNT:role/NAME. -EINVAL for any other ARN (a user: no role to narrow). A role with a
 * path cannot be told from this ARN: such a role is named in experiment_role. */
int expcreds_role_of(const char *caller_arn, char *out, size_t n);
/* Pure: the session policy (JSON, packed): s3:GetObject on the source object (or prefix/ *, with ListBucket on the
 * prefix), and Get/Put/ListMultipartUploadParts/AbortMultipartUpload on results_bucket/outputs_prefix* with
 * ListBucket there; nothing else (not the ledger, status.json, report.html, logs). NULL on allocation failure. */
char *expcreds_policy(const char *src_bucket, const char *src_key, const char *res_bucket, const char *outputs_prefix);
/* Pure: the container provider's answer for a set of keys (AccessKeyId, SecretAccessKey, Token, Expiration). */
char *expcreds_answer(const struct aws_creds *cr);
/* Pure: an HTTP request (its head, NUL-terminated) checked: 200 for GET EXPCREDS_PATH with Authorization equal to
 * token, 401 without it, 403 with another, 404 for another path, 405 for another method, 400 unreadable. */
int expcreds_check(const char *req, const char *token);

/* Assumes the role once (0, or -errno with err saying why: then nothing runs), then serves on 127.0.0.1 (a port the
 * kernel picks) from a thread of its own. policy may be NULL. */
int expcreds_start(struct expcreds *E, struct aws_ctx *c, const char *role_arn, const char *policy,
                   const char *session, char *err, size_t errlen);
/* Stops the thread and wipes the keys (nothing when it was never started). */
void expcreds_stop(struct expcreds *E);

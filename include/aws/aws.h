/* SPDX-License-Identifier: Apache-2.0 */
/* aws.h — a signed AWS request with the SDK standard retry mode: sign, send, classify, back off, repeat. */
#pragma once
#include <stdatomic.h>

#include "aws/creds.h"
#include "aws/http.h"
#include "aws/imds.h"
#include "aws/sigv4.h"
#include "aws/xml.h"

#define AWS_MAX_EXTRA_HEADERS 16

struct chain;

struct aws_ctx {
        struct imds imds;
        struct creds_provider creds;
        struct chain *chain;           /* the profile in use when the environment has no keys (chain.c) */
        void (*cleanup)(struct aws_ctx *c);  /* frees what a layer above set up (the chain), NULL: nothing */
        char region[64];
        int max_attempts;
        atomic_long skew;              /* seconds added to the local clock (from a server's Date) */
        atomic_long clock_offset;      /* the cloud's clock minus the local one, from the last answer's Date */
        atomic_bool have_offset;
        char s3_endpoint[256];         /* scheme://host[:port], empty = AWS default */
        char ec2_endpoint[256];
        char sts_endpoint[256];
        int config_r;                  /* < 0: the AWS config files are unusable; every call fails with config_err */
        char config_err[512];
        _Atomic unsigned long requests, retries;
};

/* Reads the AWS_* environment: keys from it, else the instance role (IMDS); region from AWS_REGION,
 * AWS_DEFAULT_REGION, then IMDS (lazily, aws_region()). aws_ctx_init (chain.h) adds the profiles on top. */
int aws_ctx_init_base(struct aws_ctx *c);
void aws_ctx_free(struct aws_ctx *c);
/* Now by the cloud's clock (to compare with times the cloud gives, such as a spot notice's): the local clock plus
 * the offset the Date of the last answer showed, to the second; the local clock (and the signing skew) before any
 * answer. */
time_t aws_cloud_now(struct aws_ctx *c);
/* The region to sign for; asks IMDS once when neither the environment nor the profile names one. */
int aws_region(struct aws_ctx *c, char *err, size_t errlen);
/* A context that signs with fixed credentials and otherwise copies parent's settings (region, endpoints,
 * retries, clock skew), e.g. for AssumeRole with a source profile's keys. No IMDS: it needs a region. */
int aws_ctx_with_creds(const struct aws_ctx *parent, const struct aws_creds *cr, struct aws_ctx *ret);
void aws_ctx_with_creds_free(struct aws_ctx *c);

struct aws_req {
        const char *op;                /* for messages: "GetObject" */
        const char *method;
        const char *service;           /* "s3", "ec2" */
        const char *endpoint;          /* scheme://host[:port] */
        const char *path;              /* decoded */
        const struct kv *query;
        size_t n_query;
        const struct kv *headers;      /* extra headers to sign and send */
        size_t n_headers;
        const void *body;
        uint64_t body_len;
        int body_fd;                   /* -1 unless streaming from a file */
        off_t body_off;
        const char *payload_hash;      /* NULL: computed from an in-memory body; UNSIGNED-PAYLOAD for fd bodies */
        int out_fd;                    /* -1: keep the body in memory */
        off_t out_off;
        bool check_200_error;          /* a 200 whose body is an <Error> is an error (CompleteMultipartUpload) */
        const char *region;            /* signing region; NULL = the context's (SNS topics, the Price List API) */
        int max_attempts;              /* 0 = the context's; callers with a deadline ask for fewer */
        bool want_crc;                 /* CRC32 of the body written to out_fd, in the response's crc */
        size_t max_body;               /* a body kept in memory is at most this (0: HTTP_MAX_BODY): -EFBIG past it */
        void (*progress)(void *ud, int64_t delta);   /* bytes moved; negative to undo a failed attempt */
        void *progress_ud;
};

struct aws_result {
        long status;
        struct aws_error err;          /* code/message/request id when status is not 2xx */
        char msg[1024];                /* one line, ready to print */
        int64_t size;                  /* -EFBIG: the size the answer announced (-1 unknown) */
};

/* Pure: one line on what to do about an error code a newcomer's credentials or clock cause; NULL for others. */
const char *aws_error_hint(const char *code);
/* Pure: does the code say the credentials were refused (exit code 4)? */
bool aws_error_is_auth(const char *code);
/* out->msg from out->status and out->err: "OP failed: HTTP 403 CODE: message (request id …). Hint: …". */
void aws_describe_error(const char *op, const char *fallback_request_id, struct aws_result *out);
/* The endpoint of a service the context has no field for: $AWS_ENDPOINT_URL_<ENV_NAME>, else $AWS_ENDPOINT_URL
 * (the SDKs' service-specific endpoint variables), else https://<host> as given. No trailing '/'. */
void aws_endpoint_for(const char *env_name, const char *host, char *out, size_t n);

/* 0 on 2xx (response in *res, caller frees it); <0 with a one-line message in out->msg. */
int aws_send(struct aws_ctx *c, struct http_client *h, const struct aws_req *r, struct http_response *res,
             struct aws_result *out);

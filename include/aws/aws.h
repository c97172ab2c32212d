/* aws.h — a signed AWS request with the SDK standard retry mode: sign, send, classify, back off, repeat. */
#pragma once
#include <stdatomic.h>

#include "aws/creds.h"
#include "aws/http.h"
#include "aws/imds.h"
#include "aws/sigv4.h"
#include "aws/xml.h"

#define AWS_MAX_EXTRA_HEADERS 16

struct aws_ctx {
        struct imds imds;
        struct creds_provider creds;
        char region[64];
        int max_attempts;
        atomic_long skew;              /* seconds added to the local clock (from a server's Date) */
        char s3_endpoint[256];         /* scheme://host[:port], empty = AWS default */
        char ec2_endpoint[256];
        _Atomic unsigned long requests, retries;
};

/* Reads the AWS_* environment; region from AWS_REGION, AWS_DEFAULT_REGION, then IMDS (lazily, aws_region()). */
int aws_ctx_init(struct aws_ctx *c);
void aws_ctx_free(struct aws_ctx *c);
/* The region to sign for; asks IMDS once when the environment names none. */
int aws_region(struct aws_ctx *c, char *err, size_t errlen);

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
        bool want_crc;                 /* CRC32 of the body written to out_fd, in the response's crc */
        void (*progress)(void *ud, int64_t delta);   /* bytes moved; negative to undo a failed attempt */
        void *progress_ud;
};

struct aws_result {
        long status;
        struct aws_error err;          /* code/message/request id when status is not 2xx */
        char msg[768];                 /* one line, ready to print */
};

/* 0 on 2xx (response in *res, caller frees it); <0 with a one-line message in out->msg. */
int aws_send(struct aws_ctx *c, struct http_client *h, const struct aws_req *r, struct http_response *res,
             struct aws_result *out);

/* SPDX-License-Identifier: Apache-2.0 */
/* http.h — one HTTP exchange over libcurl (a reused easy handle per thread). No retries here. */
#pragma once
#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

#define HTTP_MAX_BODY (16u << 20)         /* bodies kept in memory (XML, JSON) */
#define HTTP_CONNECT_TIMEOUT_MS 10000L
#define HTTP_LOW_SPEED_LIMIT 1024L        /* bytes/s ... */
#define HTTP_LOW_SPEED_TIME 30L           /* ... for this many seconds aborts the transfer */

struct http_client {
        CURL *curl;
        long connect_timeout_ms;
        long total_timeout_ms;            /* 0 = none */
        long low_speed_time;
        bool bulk;                        /* large socket buffers for big transfers */
        unsigned so_mark;                 /* SO_MARK on its sockets (0: none; set only where it can be) */
};

int http_client_init(struct http_client *c);
void http_client_free(struct http_client *c);

struct http_request {
        const char *method;
        const char *url;
        const struct curl_slist *headers;
        /* Body: from memory, or from fd at offset (len bytes), or none. */
        const void *body;
        uint64_t body_len;
        int body_fd;                       /* -1 when body is in memory or absent */
        off_t body_off;
        /* Response body: written to out_fd at out_off when out_fd >= 0 and status is 2xx, else kept in memory. */
        int out_fd;
        off_t out_off;
        /* Called after each chunk written to out_fd (progress); may be NULL. */
        void (*progress)(void *ud, int64_t n);
        void *progress_ud;
        bool want_crc;                     /* CRC32 of the 2xx body written to out_fd, in the response's crc */
        size_t max_body;                   /* a body kept in memory is at most this (0: HTTP_MAX_BODY) */
};

struct http_response {
        long status;
        CURLcode curl_code;
        char curl_error[CURL_ERROR_SIZE];
        struct buf body;                   /* capped at HTTP_MAX_BODY */
        uint64_t written;                  /* bytes written to out_fd */
        uint64_t sent;                     /* request body bytes handed to libcurl */
        int write_error;                   /* -errno from writing out_fd (disk full...) */
        bool too_big;                      /* the body kept in memory would pass max_body: not read */
        int64_t content_length;            /* -1 when absent */
        char etag[128];
        char request_id[128];
        char bucket_region[64];
        char content_range[128];
        char date[64];
        char checksum_crc32[64];           /* x-amz-checksum-crc32 (S3 sends it with x-amz-checksum-mode) */
        char checksum_type[32];            /* x-amz-checksum-type: FULL_OBJECT | COMPOSITE */
        unsigned parts_count;              /* x-amz-mp-parts-count (HEAD/GET with partNumber) */
        bool etag_opaque;                  /* SSE-KMS or SSE-C: the ETag is not the bytes' MD5 whatever its form */
        uint32_t crc;                      /* want_crc: CRC32 of what was written to out_fd */
};

void http_response_free(struct http_response *r);
/* Returns 0 when an HTTP answer arrived (any status), <0 when the transport failed (see curl_code). */
int http_perform(struct http_client *c, const struct http_request *req, struct http_response *ret);
/* Process-wide libcurl init (call once from main). */
int http_global_init(void);

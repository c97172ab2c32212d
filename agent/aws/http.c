/* SPDX-License-Identifier: Apache-2.0 */
/* http.c — libcurl easy handle per thread, reused so connections stay alive; TLS verification always on. */
#include "aws/http.h"

#include <strings.h>

#include "checksum.h"
#include "util.h"

int http_global_init(void) { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO; }

/* SO_MARK on a new socket (needs CAP_NET_ADMIN: without it the socket goes unmarked, as any other) */
static int mark_socket(void *ud, curl_socket_t fd, curlsocktype purpose) {
        const struct http_client *c = ud;
        unsigned mark = c->so_mark;
        if (purpose == CURLSOCKTYPE_IPCXN)
                setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark);
        return CURL_SOCKOPT_OK;
}

int http_client_init(struct http_client *c) {
        *c = (struct http_client){ .connect_timeout_ms = HTTP_CONNECT_TIMEOUT_MS, .low_speed_time = HTTP_LOW_SPEED_TIME };
        c->curl = curl_easy_init();
        return c->curl ? 0 : -ENOMEM;
}

void http_client_free(struct http_client *c) {
        if (c->curl)
                curl_easy_cleanup(c->curl);
        c->curl = NULL;
}

void http_response_free(struct http_response *r) { buf_free(&r->body); }

#define HTTP_WRITE_BATCH (1u << 20)

struct xfer {
        const struct http_request *req;
        struct http_response *res;
        uint64_t sent;
        /* bulk downloads: batch libcurl's 16 KiB pieces into 1 MiB pwrites (fewer syscalls, less contention
         * between workers writing one file) */
        char *wbuf;
        size_t wlen;
        uint64_t flushed;
};

static int flush_writes(struct xfer *x) {
        size_t done = 0;
        while (done < x->wlen) {
                ssize_t w = pwrite(x->req->out_fd, x->wbuf + done, x->wlen - done,
                                   x->req->out_off + (off_t)(x->flushed + done));
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        x->res->write_error = -errno;
                        return -errno;
                }
                done += (size_t)w;
        }
        x->flushed += x->wlen;
        x->wlen = 0;
        return 0;
}

static void header_value(const char *line, size_t n, const char *name, char *dst, size_t dn) {
        size_t nl = strlen(name);
        if (n <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
                return;
        const char *v = line + nl + 1;
        const char *e = line + n;
        while (v < e && (*v == ' ' || *v == '\t'))
                v++;
        while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
                e--;
        size_t l = MIN((size_t)(e - v), dn - 1);
        memcpy(dst, v, l);
        dst[l] = 0;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud) {
        struct xfer *x = ud;
        size_t n = sz * nm;
        struct http_response *r = x->res;
        if (n > 5 && strncmp(p, "HTTP/", 5) == 0) {
                /* a new response (after 100-continue or a redirect): reset what we collected */
                r->etag[0] = r->request_id[0] = r->bucket_region[0] = r->content_range[0] = 0;
                r->checksum_crc32[0] = r->checksum_type[0] = 0;
                r->parts_count = 0;
                r->etag_opaque = false;
                r->content_length = -1;
                return n;
        }
        char cl[32] = "", pc[16] = "", sse[32] = "", ssec[32] = "";
        header_value(p, n, "ETag", r->etag, sizeof r->etag);
        header_value(p, n, "x-amz-checksum-crc32", r->checksum_crc32, sizeof r->checksum_crc32);
        header_value(p, n, "x-amz-checksum-type", r->checksum_type, sizeof r->checksum_type);
        header_value(p, n, "x-amz-mp-parts-count", pc, sizeof pc);
        header_value(p, n, "x-amz-server-side-encryption", sse, sizeof sse);
        header_value(p, n, "x-amz-server-side-encryption-customer-algorithm", ssec, sizeof ssec);
        if (str_has_prefix(sse, "aws:kms") || ssec[0])
                r->etag_opaque = true;
        header_value(p, n, "x-amz-request-id", r->request_id, sizeof r->request_id);
        header_value(p, n, "x-amz-bucket-region", r->bucket_region, sizeof r->bucket_region);
        header_value(p, n, "Content-Range", r->content_range, sizeof r->content_range);
        header_value(p, n, "Date", r->date, sizeof r->date);
        header_value(p, n, "Content-Length", cl, sizeof cl);
        uint64_t v;
        if (cl[0] && parse_u64(cl, &v) == 0)
                r->content_length = (int64_t)v;
        if (pc[0] && parse_u64(pc, &v) == 0 && v <= 10000)
                r->parts_count = (unsigned)v;
        return n;
}

static size_t on_write(char *p, size_t sz, size_t nm, void *ud) {
        struct xfer *x = ud;
        size_t n = sz * nm;
        struct http_response *r = x->res;
        if (x->req->out_fd >= 0 && r->status >= 200 && r->status < 300 && x->req->want_crc)
                r->crc = crc32_update(r->crc, p, n);
        if (x->req->out_fd >= 0 && r->status >= 200 && r->status < 300 && x->wbuf) {
                for (size_t done = 0; done < n;) {
                        size_t c = MIN(n - done, HTTP_WRITE_BATCH - x->wlen);
                        memcpy(x->wbuf + x->wlen, p + done, c);
                        x->wlen += c;
                        done += c;
                        if (x->wlen == HTTP_WRITE_BATCH && flush_writes(x) < 0)
                                return 0; /* aborts the transfer */
                }
                r->written += n;
                if (x->req->progress)
                        x->req->progress(x->req->progress_ud, (int64_t)n);
                return n;
        }
        if (x->req->out_fd >= 0 && r->status >= 200 && r->status < 300) {
                size_t done = 0;
                while (done < n) {
                        ssize_t w = pwrite(x->req->out_fd, p + done, n - done,
                                           x->req->out_off + (off_t)(r->written + done));
                        if (w < 0) {
                                if (errno == EINTR)
                                        continue;
                                r->write_error = -errno;
                                return 0; /* aborts the transfer */
                        }
                        done += (size_t)w;
                }
                r->written += n;
                if (x->req->progress)
                        x->req->progress(x->req->progress_ud, (int64_t)n);
                return n;
        }
        if (buf_add(&r->body, p, n) < 0) {
                r->too_big = true; /* a bounded read, not a network failure: aws_send says so */
                return 0;
        }
        return n;
}

static size_t on_read(char *p, size_t sz, size_t nm, void *ud) {
        struct xfer *x = ud;
        const struct http_request *q = x->req;
        size_t want = MIN(sz * nm, (size_t)(q->body_len - x->sent));
        if (want == 0)
                return 0;
        if (q->body_fd >= 0) {
                ssize_t r;
                do
                        r = pread(q->body_fd, p, want, q->body_off + (off_t)x->sent);
                while (r < 0 && errno == EINTR);
                if (r <= 0)
                        return CURL_READFUNC_ABORT;
                want = (size_t)r;
        } else
                memcpy(p, (const char *)q->body + x->sent, want);
        x->sent += want;
        x->res->sent += want;
        if (q->progress)
                q->progress(q->progress_ud, (int64_t)want);
        return want;
}

static int seek_cb(void *ud, curl_off_t off, int origin) {
        struct xfer *x = ud;
        if (origin != SEEK_SET || off < 0 || (uint64_t)off > x->req->body_len)
                return CURL_SEEKFUNC_FAIL;
        if (x->req->progress)
                x->req->progress(x->req->progress_ud, (int64_t)off - (int64_t)x->sent);
        x->res->sent -= x->sent - (uint64_t)off;
        x->sent = (uint64_t)off;
        return CURL_SEEKFUNC_OK;
}

/* libcurl calls on_write before we know the status; capture it via the header callback's status line. */
static size_t on_header_status(char *p, size_t sz, size_t nm, void *ud) {
        struct xfer *x = ud;
        size_t n = sz * nm;
        int major, minor;
        long code;
        if (n > 12 && sscanf(p, "HTTP/%d.%d %ld", &major, &minor, &code) >= 2)
                x->res->status = code;
        else if (n > 8 && sscanf(p, "HTTP/%d %ld", &major, &code) == 2)
                x->res->status = code;
        return on_header(p, sz, nm, ud);
}

int http_perform(struct http_client *c, const struct http_request *req, struct http_response *ret) {
        struct http_response *r = ret;
        /* (+1: the buffer keeps a NUL after the body, so that a body of exactly max_body fits) */
        *r = (struct http_response){ .body = BUF_INIT((req->max_body ? req->max_body : HTTP_MAX_BODY) + 1),
                                     .content_length = -1 };
        struct xfer x = { .req = req, .res = r };
        CURL *h = c->curl;
        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_URL, req->url);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
        const char *ca = env_nonempty("AWS_CA_BUNDLE");
        if (ca)
                curl_easy_setopt(h, CURLOPT_CAINFO, ca);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
        if (c->total_timeout_ms)
                curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->total_timeout_ms);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, HTTP_LOW_SPEED_LIMIT);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, c->low_speed_time);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->curl_error);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header_status);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, req->headers);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
        if (c->so_mark) {
                curl_easy_setopt(h, CURLOPT_SOCKOPTFUNCTION, mark_socket);
                curl_easy_setopt(h, CURLOPT_SOCKOPTDATA, c);
        }
        if (c->bulk) {
                curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);
                curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
        }
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
        const char *m = req->method;
        bool has_body = req->body_fd >= 0 || req->body;
        if (strcmp(m, "HEAD") == 0)
                curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        else if (strcmp(m, "GET") != 0) {
                if (strcmp(m, "PUT") == 0 || strcmp(m, "POST") == 0 || has_body) {
                        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
                        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
                        curl_easy_setopt(h, CURLOPT_READDATA, &x);
                        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_cb);
                        curl_easy_setopt(h, CURLOPT_SEEKDATA, &x);
                        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)(has_body ? req->body_len : 0));
                }
                curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
        }
        if (req->out_fd >= 0 && c->bulk)
                x.wbuf = malloc(HTTP_WRITE_BATCH);
        r->curl_code = curl_easy_perform(h);
        if (x.wbuf) {
                if (x.wlen && r->status >= 200 && r->status < 300 && flush_writes(&x) < 0 && r->curl_code == CURLE_OK)
                        r->curl_code = CURLE_WRITE_ERROR;
                free(x.wbuf);
        }
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (status)
                r->status = status;
        if (r->curl_code != CURLE_OK) {
                if (!r->curl_error[0])
                        snprintf(r->curl_error, sizeof r->curl_error, "%s", curl_easy_strerror(r->curl_code));
                if (r->write_error)
                        return r->write_error;
                return -EIO;
        }
        return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* test_sigv4.c — the official SigV4 suites (classic, aws-c-auth v4 header+query), the AWS S3 examples and
 * the General Reference IAM example, loaded case by case from tests/vectors. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <sys/stat.h>

#include "aws/sigv4.h"
#include "test.h"

#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

static int cases_total, cases_ok;

struct preq {
        char method[16];
        char *path;
        struct kv query[SIGV4_MAX_QUERY];
        size_t nq;
        struct kv headers[SIGV4_MAX_HEADERS];
        size_t nh;
        const char *body;
        char *text; /* owns the strings above */
        char *owned[2 * SIGV4_MAX_QUERY + 1];
        size_t nowned;
};

static void preq_free(struct preq *p) {
        free(p->text);
        for (size_t i = 0; i < p->nowned; i++)
                free(p->owned[i]);
}

static char *own(struct preq *p, char *s) {
        if (p->nowned < ARRAY_SIZE(p->owned))
                p->owned[p->nowned++] = s;
        return s;
}

/* Parse an HTTP request file: request line, headers (folded lines joined), blank line, body. */
static int parse_req(const char *file, struct preq *p) {
        memset(p, 0, sizeof *p);
        if (read_file_capped(file, 1 << 20, &p->text, NULL) < 0)
                return -1;
        char *s = p->text;
        char *eol = strchr(s, '\n');
        if (!eol)
                eol = s + strlen(s);
        *eol = 0;
        char *sp = strchr(s, ' ');
        char *http = strstr(s, " HTTP/");
        if (!sp || !http)
                return -1;
        *sp = 0;
        *http = 0;
        snprintf(p->method, sizeof p->method, "%s", s);
        char *target = sp + 1;
        char *q = strchr(target, '?');
        if (q)
                *q++ = 0;
        uri_decode(target, strlen(target), &p->path);
        own(p, p->path);
        while (q && *q) {
                char *amp = strchrnul(q, '&');
                char *next = *amp ? amp + 1 : amp;
                *amp = 0;
                char *eq = strchr(q, '=');
                char *k, *v;
                if (eq) {
                        *eq = 0;
                        uri_decode(q, strlen(q), &k);
                        uri_decode(eq + 1, strlen(eq + 1), &v);
                } else {
                        uri_decode(q, strlen(q), &k);
                        v = strdup("");
                }
                p->query[p->nq++] = (struct kv){ own(p, k), own(p, v) };
                q = next;
        }
        char *line = eol + 1;
        if (eol == s + strlen(s) && !*line)
                line = eol;
        while (line && *line && *line != '\n') {
                char *e = strchrnul(line, '\n');
                char *next = *e ? e + 1 : e;
                *e = 0;
                if ((line[0] == ' ' || line[0] == '\t') && p->nh > 0) {
                        /* folded continuation: join to the previous value with a space */
                        char *prev = (char *)p->headers[p->nh - 1].value;
                        size_t n = strlen(prev) + strlen(line) + 2;
                        char *j = malloc(n);
                        snprintf(j, n, "%s %s", prev, line);
                        p->headers[p->nh - 1].value = own(p, j);
                } else {
                        char *c = strchr(line, ':');
                        if (!c)
                                return -1;
                        *c = 0;
                        p->headers[p->nh++] = (struct kv){ line, c + 1 };
                }
                line = next;
        }
        p->body = line && *line == '\n' ? line + 1 : "";
        return 0;
}

static char *slurp(const char *dir, const char *name) {
        char path[1024];
        char *s = NULL;
        snprintf(path, sizeof path, "%s/%s", dir, name);
        if (read_file_capped(path, 1 << 20, &s, NULL) < 0)
                return NULL;
        return s;
}

static void compare(const char *label, const char *what, const char *got, const char *want) {
        char name[512];
        snprintf(name, sizeof name, "%s %s", label, what);
        T_EXPECT_STR(name, got, want ? want : "(missing vector file)");
}

static void count_case(int failed_before) {
        cases_total++;
        if (t_failed == failed_before)
                cases_ok++;
}

/* Classic suite: <dir>/<case>/<case>.{req,creq,sts,authz}; recurse into group folders. */
static void classic_dir(const char *dir) {
        DIR *d = opendir(dir);
        if (!d)
                return;
        struct dirent *de;
        char *names[128];
        size_t n = 0;
        while ((de = readdir(d)) && n < ARRAY_SIZE(names))
                if (de->d_name[0] != '.')
                        names[n++] = strdup(de->d_name);
        closedir(d);
        for (size_t i = 0; i < n; i++) {
                char sub[1024], file[1200];
                snprintf(sub, sizeof sub, "%s/%s", dir, names[i]);
                struct stat st;
                if (stat(sub, &st) < 0 || !S_ISDIR(st.st_mode)) {
                        free(names[i]);
                        continue;
                }
                snprintf(file, sizeof file, "%s/%s.req", sub, names[i]);
                if (access(file, F_OK) != 0) {
                        classic_dir(sub);
                        free(names[i]);
                        continue;
                }
                int before = t_failed;
                struct preq p;
                char label[256];
                snprintf(label, sizeof label, "sigv4/%s", names[i]);
                if (parse_req(file, &p) < 0) {
                        t_result(label, 0, "cannot parse %s", file);
                        count_case(before);
                        preq_free(&p);
                        free(names[i]);
                        continue;
                }
                struct aws_creds c = { .access_key = "AKIDEXAMPLE", .secret_key = SECRET };
                if (strcmp(names[i], "get-vanilla-with-session-token") == 0)
                        c.token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
                char ph[65];
                sha256_hex(p.body, strlen(p.body), ph);
                struct sigv4_request r = {
                        .method = p.method, .path = p.path, .query = p.query, .n_query = p.nq,
                        .headers = p.headers, .n_headers = p.nh, .payload_hash = ph, .region = "us-east-1",
                        .service = "service", .now = 1440938160, .normalize_path = true,
                };
                struct sigv4_result res = { 0 };
                int rc = sigv4_sign(&r, &c, &res);
                char fn[300];
                snprintf(fn, sizeof fn, "%s.creq", names[i]);
                _cleanup_free_ char *creq = slurp(sub, fn);
                snprintf(fn, sizeof fn, "%s.sts", names[i]);
                _cleanup_free_ char *sts = slurp(sub, fn);
                snprintf(fn, sizeof fn, "%s.authz", names[i]);
                _cleanup_free_ char *authz = slurp(sub, fn);
                if (rc < 0)
                        t_result(label, 0, "sign failed %d", rc);
                else {
                        compare(label, "canonical-request", res.canonical_request, creq);
                        compare(label, "string-to-sign", res.string_to_sign, sts);
                        compare(label, "authorization", res.authorization, authz);
                }
                count_case(before);
                sigv4_result_clear(&res);
                preq_free(&p);
                free(names[i]);
        }
}

struct ctx {
        struct aws_creds creds;
        char region[64], service[64];
        time_t now;
        bool normalize, sign_body, omit_token, presigned;
        unsigned expires;
        char payload[80];
        cJSON *json;
};

static int load_ctx(const char *dir, struct ctx *c) {
        memset(c, 0, sizeof *c);
        _cleanup_free_ char *txt = slurp(dir, "context.json");
        if (!txt || !(c->json = cJSON_Parse(txt)))
                return -1;
        cJSON *cr = cJSON_GetObjectItem(c->json, "credentials");
        c->creds.access_key = cJSON_GetStringValue(cJSON_GetObjectItem(cr, "access_key_id"));
        c->creds.secret_key = cJSON_GetStringValue(cJSON_GetObjectItem(cr, "secret_access_key"));
        c->creds.token = cJSON_GetStringValue(cJSON_GetObjectItem(cr, "token"));
        snprintf(c->region, sizeof c->region, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(c->json, "region")));
        snprintf(c->service, sizeof c->service, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(c->json, "service")));
        if (parse_iso8601(cJSON_GetStringValue(cJSON_GetObjectItem(c->json, "timestamp")), &c->now) < 0)
                return -1;
        c->normalize = cJSON_IsTrue(cJSON_GetObjectItem(c->json, "normalize")) ||
                       cJSON_IsTrue(cJSON_GetObjectItem(c->json, "normalize_path"));
        c->sign_body = cJSON_IsTrue(cJSON_GetObjectItem(c->json, "sign_body"));
        c->omit_token = cJSON_IsTrue(cJSON_GetObjectItem(c->json, "omit_session_token"));
        c->presigned = cJSON_IsTrue(cJSON_GetObjectItem(c->json, "presigned"));
        cJSON *e = cJSON_GetObjectItem(c->json, "expiration_in_seconds");
        if (!e)
                e = cJSON_GetObjectItem(c->json, "expires");
        c->expires = cJSON_IsNumber(e) ? (unsigned)e->valuedouble : 0;
        const char *ph = cJSON_GetStringValue(cJSON_GetObjectItem(c->json, "payload_hash"));
        snprintf(c->payload, sizeof c->payload, "%s", ph ? ph : "");
        return 0;
}

static void crt_case(const char *dir, const char *name) {
        char label[300];
        struct ctx c;
        struct preq p;
        snprintf(label, sizeof label, "sigv4-crt/%s", name);
        int before = t_failed;
        char file[1200];
        snprintf(file, sizeof file, "%s/request.txt", dir);
        if (load_ctx(dir, &c) < 0 || parse_req(file, &p) < 0) {
                t_result(label, 0, "cannot load case");
                count_case(before);
                cJSON_Delete(c.json);
                return;
        }
        char ph[65];
        sha256_hex(p.body, strlen(p.body), ph);
        struct sigv4_request r = {
                .method = p.method, .path = p.path, .query = p.query, .n_query = p.nq, .headers = p.headers,
                .n_headers = p.nh, .payload_hash = ph, .region = c.region, .service = c.service, .now = c.now,
                .normalize_path = c.normalize, .add_content_sha256 = c.sign_body, .omit_token = c.omit_token,
        };
        struct sigv4_result res = { 0 };
        char lab2[400];
        snprintf(lab2, sizeof lab2, "%s header", label);
        if (sigv4_sign(&r, &c.creds, &res) < 0)
                t_result(lab2, 0, "sign failed");
        else {
                _cleanup_free_ char *a = slurp(dir, "header-canonical-request.txt");
                _cleanup_free_ char *b = slurp(dir, "header-string-to-sign.txt");
                _cleanup_free_ char *s = slurp(dir, "header-signature.txt");
                compare(lab2, "canonical-request", res.canonical_request, a);
                compare(lab2, "string-to-sign", res.string_to_sign, b);
                compare(lab2, "signature", res.signature, s);
        }
        sigv4_result_clear(&res);
        snprintf(lab2, sizeof lab2, "%s query", label);
        r.add_content_sha256 = false;
        if (sigv4_presign(&r, &c.creds, c.expires, &res) < 0)
                t_result(lab2, 0, "presign failed");
        else {
                _cleanup_free_ char *a = slurp(dir, "query-canonical-request.txt");
                _cleanup_free_ char *b = slurp(dir, "query-string-to-sign.txt");
                _cleanup_free_ char *s = slurp(dir, "query-signature.txt");
                compare(lab2, "canonical-request", res.canonical_request, a);
                compare(lab2, "string-to-sign", res.string_to_sign, b);
                compare(lab2, "signature", res.signature, s);
        }
        count_case(before);
        sigv4_result_clear(&res);
        preq_free(&p);
        cJSON_Delete(c.json);
}

/* s3-docs and the IAM example share one layout: context.json, request.txt, canonical-request.txt, ... */
static void doc_case(const char *dir, const char *label) {
        struct ctx c;
        struct preq p;
        int before = t_failed;
        char file[1200];
        snprintf(file, sizeof file, "%s/request.txt", dir);
        if (load_ctx(dir, &c) < 0 || parse_req(file, &p) < 0) {
                t_result(label, 0, "cannot load case");
                count_case(before);
                cJSON_Delete(c.json);
                return;
        }
        char ph[65];
        sha256_hex(p.body, strlen(p.body), ph);
        struct sigv4_request r = {
                .method = p.method, .path = p.path, .query = p.query, .n_query = p.nq, .headers = p.headers,
                .n_headers = p.nh, .payload_hash = c.payload[0] ? c.payload : ph, .region = c.region,
                .service = c.service, .now = c.now, .normalize_path = c.normalize,
                .add_content_sha256 = strcmp(c.service, "s3") == 0,
        };
        struct sigv4_result res = { 0 };
        int rc = c.presigned ? sigv4_presign(&r, &c.creds, c.expires, &res) : sigv4_sign(&r, &c.creds, &res);
        if (rc < 0)
                t_result(label, 0, "sign failed %d", rc);
        else {
                _cleanup_free_ char *a = slurp(dir, "canonical-request.txt");
                _cleanup_free_ char *b = slurp(dir, "string-to-sign.txt");
                _cleanup_free_ char *s = slurp(dir, "signature.txt");
                compare(label, "canonical-request", res.canonical_request, a);
                compare(label, "string-to-sign", res.string_to_sign, b);
                compare(label, "signature", res.signature, s ? str_trim(s) : NULL);
                _cleanup_free_ char *url = slurp(dir, "presigned-url.txt");
                if (url && c.presigned) {
                        const char *q = strchr(url, '?');
                        compare(label, "presigned-query", res.query_string, q ? q + 1 : "");
                }
        }
        count_case(before);
        sigv4_result_clear(&res);
        preq_free(&p);
        cJSON_Delete(c.json);
}

static void each_subdir(const char *dir, void (*fn)(const char *path, const char *name)) {
        DIR *d = opendir(dir);
        if (!d) {
                t_result(dir, 0, "vector directory missing");
                return;
        }
        char *names[128];
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d)) && n < ARRAY_SIZE(names))
                if (de->d_name[0] != '.' && de->d_type == DT_DIR)
                        names[n++] = strdup(de->d_name);
        closedir(d);
        for (size_t i = 0; i < n; i++) {
                char sub[1024];
                snprintf(sub, sizeof sub, "%s/%s", dir, names[i]);
                fn(sub, names[i]);
                free(names[i]);
        }
}

static void s3doc(const char *path, const char *name) {
        char label[300];
        snprintf(label, sizeof label, "s3-docs/%s", name);
        doc_case(path, label);
}

static void unit_cases(void) {
        unsigned char k[32];
        char hex[65];
        sigv4_signing_key(SECRET, "20120215", "us-east-1", "iam", k);
        hex_encode(k, 32, hex);
        T_EXPECT_STR("signing-key derivation", hex, "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
        struct { const char *in, *out; } norm[] = {
                { "/", "/" }, { "//", "/" }, { "/a/./b/../c", "/a/c" }, { "/a/b/..", "/a/" },
                { "/../..", "/" }, { "/a//b/", "/a/b/" }, { "", "/" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(norm); i++) {
                _cleanup_free_ char *o = NULL;
                char name[128];
                snprintf(name, sizeof name, "normalize-path %s", norm[i].in);
                sigv4_normalize_path(norm[i].in, &o);
                T_EXPECT_STR(name, o, norm[i].out);
        }
        /* S3 keys: single encoding, no normalization, '/' kept. */
        struct kv h[] = { { "Host", "b.s3.amazonaws.com" } };
        struct aws_creds c = { .access_key = "AKID", .secret_key = "s" };
        struct sigv4_request r = { .method = "GET", .path = "/a b/+=,%~/ü/../x", .headers = h, .n_headers = 1,
                                   .region = "us-east-1", .service = "s3", .now = 0, .add_content_sha256 = true,
                                   .payload_hash = SIGV4_UNSIGNED_PAYLOAD };
        struct sigv4_result res = { 0 };
        sigv4_sign(&r, &c, &res);
        T_EXPECT_STR("s3 key single-encoded", res.encoded_path, "/a%20b/%2B%3D%2C%25~/%C3%BC/../x");
        T_EXPECT("s3 unsigned payload signed", res.canonical_request &&
                                                   strstr(res.canonical_request, "x-amz-content-sha256:UNSIGNED-PAYLOAD\n"));
        sigv4_result_clear(&res);
        T_EXPECT("presign rejects 8 days", sigv4_presign(&r, &c, 8 * 86400, &res) == -ERANGE);
        T_EXPECT("presign rejects 0", sigv4_presign(&r, &c, 0, &res) == -ERANGE);
        struct aws_creds bad = { .access_key = "AKID" };
        T_EXPECT("missing secret is EINVAL", sigv4_sign(&r, &bad, &res) == -EINVAL);
}

static void crt(const char *path, const char *name) { crt_case(path, name); }

int main(int argc, char **argv) {
        const char *vec = argc > 1 ? argv[1] : "tests/vectors";
        char d[1024];
        unit_cases();
        snprintf(d, sizeof d, "%s/sigv4", vec);
        classic_dir(d);
        snprintf(d, sizeof d, "%s/sigv4-crt", vec);
        each_subdir(d, crt);
        snprintf(d, sizeof d, "%s/s3-docs", vec);
        each_subdir(d, s3doc);
        snprintf(d, sizeof d, "%s/sigv4-gr-iam-listusers", vec);
        doc_case(d, "sigv4-gr-iam-listusers");
        printf("SigV4 suite cases passed: %d of %d\n", cases_ok, cases_total);
        return t_summary();
}

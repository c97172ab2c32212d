/* SPDX-License-Identifier: Apache-2.0 */
/* pricing.c — DescribeSpotPriceHistory (EC2 Query API) and the Price List API's GetProducts (JSON 1.1). */
#include "aws/pricing.h"

#include <cjson/cJSON.h>
#include <math.h>

#include "jsonx.h"
#include "aws/ec2.h"
#include "aws/query.h"

static int cmp_point(const void *a, const void *b) {
        const struct price_point *x = a, *y = b;
        return x->t < y->t ? -1 : x->t > y->t;
}

/* A price as AWS writes it: "0.918000", "3.0600000000". */
static int parse_price(const char *s, double *ret) {
        if (!s || !*s)
                return -EINVAL;
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (errno || *end || !isfinite(v) || v < 0 || v > 1e6)
                return -EINVAL;
        *ret = v;
        return 0;
}

int pricing_parse_spot_page(const struct xml_node *root, const char *type, const char *az, struct price_point *pts,
                            size_t cap, size_t *n, char **ret_next) {
        *ret_next = NULL;
        if (!root || strcmp(root->name, "DescribeSpotPriceHistoryResponse") != 0)
                return -MF_EPARSE;
        const struct xml_node *set = xml_child(root, "spotPriceHistorySet");
        for (const struct xml_node *it = xml_child(set, "item"); it; it = xml_next_named(it)) {
                const char *ty = xml_text(it, "instanceType"), *zone = xml_text(it, "availabilityZone");
                const char *pd = xml_text(it, "productDescription"), *pr = xml_text(it, "spotPrice");
                const char *ts = xml_text(it, "timestamp");
                if (!ty || !zone || !pd || strcmp(ty, type) || strcmp(zone, az) || !str_has_prefix(pd, "Linux/UNIX"))
                        continue;
                struct price_point p;
                if (parse_price(pr, &p.usd_hour) < 0 || !ts || parse_iso8601(ts, &p.t) < 0)
                        return -MF_EPARSE;
                if (*n >= cap)
                        return -E2BIG;
                pts[(*n)++] = p;
        }
        const char *next = xml_text(root, "nextToken");
        if (next && *next && !(*ret_next = strdup(next)))
                return -ENOMEM;
        return 0;
}

static void iso(time_t t, char out[32]) {
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int pricing_spot_history(struct aws_ctx *c, struct http_client *h, const char *type, const char *az, time_t start,
                         time_t end, const struct pricing_opts *o, struct price_point *pts, size_t cap, size_t *ret_n,
                         struct aws_result *out) {
        *out = (struct aws_result){ 0 };
        int r = aws_region(c, out->msg, sizeof out->msg);
        if (r < 0)
                return r;
        char ep[320], from[32], to[32];
        ec2_endpoint(c, ep, sizeof ep);
        iso(start, from);
        iso(end, to);
        struct query_service s = { .service = "ec2", .version = EC2_API_VERSION, .endpoint = ep,
                                   .max_attempts = o->max_attempts, .timeout_ms = o->timeout_ms };
        _cleanup_free_ char *token = NULL;
        size_t n = 0;
        for (int page = 0; page < PRICING_MAX_PAGES; page++) {
                /* the product description as a parameter (a filter on it is what moto 5.2.1 cannot match) */
                struct kv p[8] = { { "InstanceType.1", type }, { "ProductDescription.1", "Linux/UNIX" },
                                   { "Filter.1.Name", "availability-zone" }, { "Filter.1.Value.1", az },
                                   { "StartTime", from }, { "EndTime", to }, { "MaxResults", "1000" } };
                size_t np = 7;
                if (token)
                        p[np++] = (struct kv){ "NextToken", token };
                _cleanup_(xml_freep) struct xml_node *x = NULL;
                r = query_call(c, h, &s, "DescribeSpotPriceHistory", p, np, &x, out);
                if (r < 0)
                        return r;
                free(token);
                token = NULL;
                r = pricing_parse_spot_page(x, type, az, pts, cap, &n, &token);
                if (r < 0) {
                        snprintf(out->msg, sizeof out->msg, "DescribeSpotPriceHistory: %s",
                                 r == -E2BIG ? "more price changes than expected" : "unreadable answer");
                        return r;
                }
                if (!token)
                        break;
        }
        qsort(pts, n, sizeof *pts, cmp_point);
        *ret_n = n;
        return 0;
}

int pricing_products_request(const char *type, const char *region, const char *next_token, char **ret) {
        static const char *const fixed[][2] = {
                { "operatingSystem", "Linux" },   { "tenancy", "Shared" },
                { "preInstalledSw", "NA" },       { "capacitystatus", "Used" },
                { "licenseModel", "No License required" },
        };
        _cleanup_(cjson_deletep) cJSON *o = cJSON_CreateObject();
        cJSON *f = o ? cJSON_AddArrayToObject(o, "Filters") : NULL;
        if (!f || !cJSON_AddStringToObject(o, "ServiceCode", "AmazonEC2") ||
            !cJSON_AddStringToObject(o, "FormatVersion", "aws_v1") || !cJSON_AddNumberToObject(o, "MaxResults", 20))
                return -ENOMEM;
        if (next_token && !cJSON_AddStringToObject(o, "NextToken", next_token))
                return -ENOMEM;
        const char *pairs[7][2] = { { "instanceType", type }, { "regionCode", region } };
        size_t np = 2;
        for (size_t i = 0; i < ARRAY_SIZE(fixed); i++, np++)
                pairs[np][0] = fixed[i][0], pairs[np][1] = fixed[i][1];
        for (size_t i = 0; i < np; i++) {
                cJSON *t = cJSON_CreateObject();
                if (!t || !cJSON_AddItemToArray(f, t) || !cJSON_AddStringToObject(t, "Type", "TERM_MATCH") ||
                    !cJSON_AddStringToObject(t, "Field", pairs[i][0]) || !cJSON_AddStringToObject(t, "Value", pairs[i][1]))
                        return -ENOMEM;
        }
        char *s = cJSON_PrintUnformatted(o);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* terms.OnDemand.<offer>.priceDimensions.<rate>.pricePerUnit.USD of one product (unit Hrs); -ENOENT none. */
static int product_price(const cJSON *product, double *ret) {
        const cJSON *od = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(product, "terms"),
                                                            "OnDemand");
        int found = 0;
        double price = 0;
        const cJSON *offer, *dim;
        cJSON_ArrayForEach(offer, od) {
                cJSON_ArrayForEach(dim, cJSON_GetObjectItemCaseSensitive(offer, "priceDimensions")) {
                        const char *unit = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(dim, "unit"));
                        const char *usd = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                                cJSON_GetObjectItemCaseSensitive(dim, "pricePerUnit"), "USD"));
                        double v;
                        if (!unit || strcmp(unit, "Hrs") || parse_price(usd, &v) < 0 || v <= 0)
                                continue;
                        if (found && v != price)
                                return -ERANGE;
                        price = v;
                        found = 1;
                }
        }
        if (!found)
                return -ENOENT;
        *ret = price;
        return 0;
}

int pricing_parse_products(const char *json, size_t len, double *ret_usd, size_t *ret_products, char **ret_next) {
        *ret_next = NULL;
        _cleanup_(cjson_deletep) cJSON *o = cJSON_ParseWithLength(json, len);
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "PriceList");
        if (!cJSON_IsArray(list))
                return -MF_EPARSE;
        size_t n = 0;
        double price = 0;
        int r = -ENOENT;
        const cJSON *it;
        cJSON_ArrayForEach(it, list) {
                /* each product is a JSON document inside a string */
                const char *s = cJSON_GetStringValue(it);
                if (!s)
                        return -MF_EPARSE;
                _cleanup_(cjson_deletep) cJSON *p = cJSON_Parse(s);
                if (!p)
                        return -MF_EPARSE;
                double v;
                int pr = product_price(p, &v);
                if (pr == -ERANGE || (pr == 0 && n && v != price))
                        return -ERANGE;
                if (pr == 0) {
                        price = v;
                        n++;
                        r = 0;
                }
        }
        const char *next = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "NextToken"));
        if (next && *next && !(*ret_next = strdup(next)))
                return -ENOMEM;
        if (r == 0)
                *ret_usd = price;
        *ret_products = n;
        return r;
}

/* A JSON-protocol error body: {"__type": "...#AccessDeniedException", "message": "..."}. */
static void json_error(const struct http_response *res, struct aws_result *out) {
        _cleanup_(cjson_deletep) cJSON *e = cJSON_ParseWithLength(res->body.data, res->body.len);
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "__type"));
        const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "message"));
        if (!msg)
                msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "Message"));
        if (!type || !*type)
                return;
        const char *hash = strrchr(type, '#');
        snprintf(out->err.code, sizeof out->err.code, "%s", hash ? hash + 1 : type);
        snprintf(out->msg, sizeof out->msg, "GetProducts failed: HTTP %ld %s: %.300s", out->status, out->err.code,
                 msg ? msg : "no message");
}

static int get_products(struct aws_ctx *c, struct http_client *h, const char *body, const struct pricing_opts *o,
                        struct http_response *res, struct aws_result *out) {
        char ep[320];
        aws_endpoint_for("PRICING", PRICING_HOST, ep, sizeof ep);
        struct kv hdr[] = { { "Content-Type", "application/x-amz-json-1.1" },
                            { "X-Amz-Target", "AWSPriceListService.GetProducts" } };
        struct aws_req q = { .op = "GetProducts", .method = "POST", .service = "pricing", .endpoint = ep, .path = "/",
                             .headers = hdr, .n_headers = 2, .body = body, .body_len = strlen(body), .body_fd = -1,
                             .out_fd = -1, .region = PRICING_REGION, .max_attempts = o->max_attempts };
        long saved = h->total_timeout_ms;
        if (o->timeout_ms)
                h->total_timeout_ms = o->timeout_ms;
        int r = aws_send(c, h, &q, res, out);
        h->total_timeout_ms = saved;
        if (r < 0 && out->status)
                json_error(res, out);
        return r;
}

int pricing_ondemand(struct aws_ctx *c, struct http_client *h, const char *type, const char *region,
                     const struct pricing_opts *o, double *ret_usd, struct aws_result *out) {
        *out = (struct aws_result){ 0 };
        _cleanup_free_ char *token = NULL;
        double price = 0;
        size_t total = 0;
        for (int page = 0; page < PRICING_MAX_PAGES; page++) {
                _cleanup_free_ char *body = NULL;
                int r = pricing_products_request(type, region, token, &body);
                if (r < 0)
                        return r;
                struct http_response res;
                r = get_products(c, h, body, o, &res, out);
                if (r < 0) {
                        http_response_free(&res);
                        return r;
                }
                free(token);
                token = NULL;
                double v = 0;
                size_t np = 0;
                r = pricing_parse_products(res.body.data, res.body.len, &v, &np, &token);
                http_response_free(&res);
                if (r == -ERANGE || (r == 0 && total && v != price)) {
                        snprintf(out->msg, sizeof out->msg, "GetProducts: %s in %s has several on-demand prices", type,
                                 region);
                        return -ERANGE;
                }
                if (r == -MF_EPARSE || r == -ENOMEM) {
                        snprintf(out->msg, sizeof out->msg, "GetProducts: unreadable answer");
                        return r;
                }
                if (r == 0) {
                        price = v;
                        total += np;
                }
                if (!token)
                        break;
        }
        if (!total) {
                snprintf(out->msg, sizeof out->msg, "GetProducts: no on-demand Linux price for %s in %s", type, region);
                return -ENOENT;
        }
        *ret_usd = price;
        return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* pricing.h — what an instance-hour costs: the spot price history (EC2 DescribeSpotPriceHistory) and the on-demand
 * price (the AWS Price List API, GetProducts). Prices are USD per hour, Linux/UNIX, shared tenancy. */
#pragma once
#include <time.h>

#include "aws/aws.h"

#define PRICING_MAX_PAGES 10
#define PRICING_REGION "us-east-1"    /* the Price List API's endpoint (it covers every region) */
#define PRICING_HOST "api.pricing.us-east-1.amazonaws.com"

struct price_point {
        time_t t;                     /* in effect from this time */
        double usd_hour;
};

struct pricing_opts {
        int max_attempts;             /* 0 = the context's */
        long timeout_ms;              /* each attempt; 0 = none */
};

/* Pure: the Linux/UNIX points of one DescribeSpotPriceHistory answer for type in az, appended to pts[*n..cap)
 * (beyond cap: -E2BIG); the page's nextToken in *ret_next (NULL when none; free it). */
int pricing_parse_spot_page(const struct xml_node *root, const char *type, const char *az, struct price_point *pts,
                            size_t cap, size_t *n, char **ret_next);
/* Every price of type in az in effect during [start, end], oldest first (EC2 includes the one in effect at start). */
int pricing_spot_history(struct aws_ctx *c, struct http_client *h, const char *type, const char *az, time_t start,
                         time_t end, const struct pricing_opts *o, struct price_point *pts, size_t cap, size_t *ret_n,
                         struct aws_result *out);

/* Pure: the GetProducts request body for a Linux, shared-tenancy, no-preinstalled-software instance type in region. */
int pricing_products_request(const char *type, const char *region, const char *next_token, char **ret);
/* Pure: the on-demand USD/hour price in one GetProducts answer. 0 and *ret_usd when every product in it has the
 * same one; -ENOENT none; -ERANGE products with different prices; -MF_EPARSE an unreadable answer. *ret_next: the
 * NextToken (NULL when none; free it). */
int pricing_parse_products(const char *json, size_t len, double *ret_usd, size_t *ret_products, char **ret_next);
/* The on-demand price of type in region (every page, the same price throughout or -ERANGE). */
int pricing_ondemand(struct aws_ctx *c, struct http_client *h, const char *type, const char *region,
                     const struct pricing_opts *o, double *ret_usd, struct aws_result *out);

/* ec2.c — TerminateInstances, StopInstances, DescribeInstances over the Query protocol. */
#include "aws/ec2.h"

#include "aws/query.h"

int ec2_form(const char *action, const struct kv *params, size_t n, struct buf *out) {
        return query_form(action, EC2_API_VERSION, params, n, out);
}

void ec2_endpoint(struct aws_ctx *c, char *ep, size_t n) {
        if (c->ec2_endpoint[0])
                snprintf(ep, n, "%s", c->ec2_endpoint);
        else
                snprintf(ep, n, "https://ec2.%s.amazonaws.com", c->region);
}

int ec2_call(struct aws_ctx *c, struct http_client *h, const char *action, const struct kv *params, size_t n,
             struct xml_node **ret, struct aws_result *out) {
        int r = aws_region(c, out->msg, sizeof out->msg);
        if (r < 0)
                return r;
        _cleanup_(buf_freep) struct buf body = BUF_INIT(1 << 20);
        r = ec2_form(action, params, n, &body);
        if (r < 0)
                return r;
        char ep[320];
        ec2_endpoint(c, ep, sizeof ep);
        struct kv hdr[] = { { "Content-Type", "application/x-www-form-urlencoded; charset=utf-8" } };
        struct aws_req q = { .op = action, .method = "POST", .service = "ec2", .endpoint = ep, .path = "/",
                             .headers = hdr, .n_headers = 1, .body = body.data, .body_len = body.len, .body_fd = -1,
                             .out_fd = -1 };
        struct http_response res;
        r = aws_send(c, h, &q, &res, out);
        if (r == 0 && ret) {
                r = xml_parse(res.body.data, res.body.len, ret);
                if (r < 0) {
                        snprintf(out->msg, sizeof out->msg, "%s: unreadable XML answer from %s", action, ep);
                        r = -MF_EPARSE;
                }
        }
        http_response_free(&res);
        return r;
}

int ec2_parse_state_change(const struct xml_node *root, const char *instance_id, char *state, size_t n) {
        const struct xml_node *set = xml_child(root, "instancesSet");
        for (const struct xml_node *it = xml_child(set, "item"); it; it = xml_next_named(it)) {
                const char *id = xml_text(it, "instanceId");
                const char *st = xml_text(it, "currentState/name");
                if (id && st && strcmp(id, instance_id) == 0) {
                        snprintf(state, n, "%s", st);
                        return 0;
                }
        }
        return -MF_EPARSE;
}

static int state_change(struct aws_ctx *c, struct http_client *h, const char *action, const char *instance_id,
                        bool dry_run, char *state, size_t n, struct aws_result *out) {
        struct kv p[2] = { { "InstanceId.1", instance_id }, { "DryRun", "true" } };
        _cleanup_(xml_freep) struct xml_node *x = NULL;
        int r = ec2_call(c, h, action, p, dry_run ? 2 : 1, &x, out);
        if (dry_run && r < 0 && strcmp(out->err.code, "DryRunOperation") == 0) {
                snprintf(state, n, "dry-run-ok");
                return 0;
        }
        if (r < 0)
                return r;
        if (ec2_parse_state_change(x, instance_id, state, n) < 0) {
                snprintf(out->msg, sizeof out->msg, "%s: the answer does not mention %s", action, instance_id);
                return -MF_EPARSE;
        }
        return 0;
}

int ec2_terminate(struct aws_ctx *c, struct http_client *h, const char *instance_id, bool dry_run, char *state,
                  size_t n, struct aws_result *out) {
        return state_change(c, h, "TerminateInstances", instance_id, dry_run, state, n, out);
}

int ec2_stop(struct aws_ctx *c, struct http_client *h, const char *instance_id, char *state, size_t n,
             struct aws_result *out) {
        return state_change(c, h, "StopInstances", instance_id, false, state, n, out);
}

int ec2_describe_state(struct aws_ctx *c, struct http_client *h, const char *instance_id, char *state, size_t n,
                       struct aws_result *out) {
        struct kv p[] = { { "InstanceId.1", instance_id } };
        _cleanup_(xml_freep) struct xml_node *x = NULL;
        int r = ec2_call(c, h, "DescribeInstances", p, 1, &x, out);
        if (r < 0)
                return r;
        const struct xml_node *res = xml_child(xml_child(x, "reservationSet"), "item");
        for (; res; res = xml_next_named(res))
                for (const struct xml_node *it = xml_child(xml_child(res, "instancesSet"), "item"); it;
                     it = xml_next_named(it)) {
                        const char *id = xml_text(it, "instanceId"), *st = xml_text(it, "instanceState/name");
                        if (id && st && strcmp(id, instance_id) == 0) {
                                snprintf(state, n, "%s", st);
                                return 0;
                        }
                }
        snprintf(out->msg, sizeof out->msg, "DescribeInstances: %s not found", instance_id);
        return -MF_ENOTFOUND;
}

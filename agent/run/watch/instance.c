/* SPDX-License-Identifier: Apache-2.0 */
/* instance.c — the instance identity document and meta-data. */
#include "run/watch/instance.h"

#include <arpa/inet.h>

#include <cjson/cJSON.h>

#include "run/watch/watch.h"
#include "util.h"

static int imds_value(struct imds *m, const char *path, char *dst, size_t n) {
        char err[256];
        _cleanup_free_ char *v = NULL;
        int r = imds_get(m, path, &v, NULL, err, sizeof err);
        if (r == 0)
                snprintf(dst, n, "%s", str_trim(v));
        return r;
}

static void doc_field(const cJSON *doc, const char *k, char *dst, size_t n) {
        const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, k));
        if (v)
                snprintf(dst, n, "%s", v);
}

int instance_load(struct imds *m, struct instance_info *ret, char *err, size_t errlen) {
        struct instance_info in = { 0 };
        _cleanup_free_ char *txt = NULL;
        size_t len = 0;
        err[0] = 0;
        int r = imds_get(m, "dynamic/instance-identity/document", &txt, &len, err, errlen);
        cJSON *doc = r == 0 ? cJSON_ParseWithLength(txt, len) : NULL;
        if (doc) {
                doc_field(doc, "instanceId", in.id, sizeof in.id);
                doc_field(doc, "instanceType", in.type, sizeof in.type);
                doc_field(doc, "region", in.region, sizeof in.region);
                doc_field(doc, "availabilityZone", in.az, sizeof in.az);
                doc_field(doc, "imageId", in.ami, sizeof in.ami);
                doc_field(doc, "privateIp", in.private_ip, sizeof in.private_ip);
                cJSON_Delete(doc);
        }
        if (!in.id[0] && (r = imds_value(m, "meta-data/instance-id", in.id, sizeof in.id)) < 0) {
                *ret = in;
                return r;
        }
        (void)imds_value(m, "meta-data/instance-life-cycle", in.lifecycle, sizeof in.lifecycle);
        struct in_addr a;
        if (in.private_ip[0] && inet_pton(AF_INET, in.private_ip, &a) != 1)
                in.private_ip[0] = 0; /* not an address: none */
        *ret = in;
        return 0;
}

bool instance_spot_pending(struct imds *m) {
        char err[256], action[16];
        _cleanup_free_ char *body = NULL;
        size_t len = 0;
        time_t when;
        return imds_get(m, "meta-data/spot/instance-action", &body, &len, err, sizeof err) == 0 &&
               spot_parse(body, len, action, &when) == 0;
}

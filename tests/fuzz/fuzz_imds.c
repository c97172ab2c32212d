/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_imds.c — IMDS JSON: role credentials, spot and rebalance notices. */
#include <assert.h>

#include "aws/creds.h"
#include "run/watch/watch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *s = (const char *)data;
        struct aws_creds c = { 0 };
        char err[256] = "";
        if (creds_parse_imds_json(s, size, &c, err, sizeof err) == 0) {
                assert(c.access_key && c.secret_key && *c.access_key && *c.secret_key);
                aws_creds_clear(&c);
        } else
                assert(err[0]);
        char action[16];
        time_t when;
        if (spot_parse(s, size, action, &when) == 0)
                assert(!strcmp(action, "terminate") || !strcmp(action, "stop") || !strcmp(action, "hibernate"));
        rebalance_parse(s, size, &when);
        return 0;
}

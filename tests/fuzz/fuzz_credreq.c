/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_credreq.c — what the experiment (untrusted) sends the agent's credentials endpoint: a request head, checked
 * against the token (expcreds_check); and an IMDS endpoint setting read into netfilter targets. Never a crash; only
 * the exact token on the exact path is 200; the targets are IP literals with ports in range. The input is split at
 * its first NUL byte: the request, then the endpoint. */
#include <arpa/inet.h>
#include <assert.h>
#include <stdlib.h>

#include "run/proc/expcreds.h"
#include "run/proc/imdsblock.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *p = (const char *)data;
        const char *z = memchr(p, 0, size);
        size_t rlen = z ? (size_t)(z - p) : size;
        if (rlen > EXPCREDS_MAX_REQUEST)
                rlen = EXPCREDS_MAX_REQUEST;
        char *req = strndup(p, rlen);
        static const char token[] = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        if (req) {
                int st = expcreds_check(req, token);
                assert(st == 200 || st == 400 || st == 401 || st == 403 || st == 404 || st == 405);
                if (st == 200)
                        assert(strstr(req, token) && !strncmp(req, "GET " EXPCREDS_PATH " HTTP/1.", 24));
                free(req);
        }
        char *ep = z ? strndup(z + 1, size - rlen - 1) : NULL;
        if (ep) {
                struct imds_target t[3];
                char err[512];
                int n = imds_block_targets(ep, t, err, sizeof err);
                unsigned char a[16];
                for (int i = 0; i < n; i++)
                        assert(t[i].port > 0 && t[i].port <= 65535 &&
                               inet_pton(t[i].v6 ? AF_INET6 : AF_INET, t[i].host, a) == 1);
                if (n > 0) {
                        char cmd[1024];
                        imds_block_nft(1000, t, n, cmd, sizeof cmd);
                }
                free(ep);
        }
        return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_laptop.c — what the laptop's commands print of what they read from S3: a status.json through `mayfly
 * status`'s printer (its strings made safe first) and a log through `mayfly logs`' (pieces at offsets, attempt
 * markers from an instance's record). The input is split at its first two NUL bytes: status.json, a record, a log.
 * Never a crash; never an escape or control character from the input on the terminal, but SGR colours, \r, tab and
 * newline in the log. */
#include <assert.h>
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "fuzzinput.h"
#include "cmd/logview.h"
#include "cmd/statusview.h"
#include "jsonx.h"
#include "termsafe.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct parts3 in = split3((const char *)data, size);
        const char *p = in.p[0], *rec = in.p[1], *log = in.p[2];
        size_t slen = in.n[0], rlen = in.n[1], llen = in.n[2];
        char *out = NULL;
        size_t olen = 0;
        FILE *f = open_memstream(&out, &olen);
        _cleanup_(cjson_deletep) cJSON *st = cJSON_ParseWithLength(p, slen);
        if (cJSON_IsObject(st)) {
                term_safe_json(st);
                status_print_body(f, st);
        }
        fflush(f);
        assert(terminal_safe((const unsigned char *)out, olen, false));
        fclose(f);
        free(out);
        out = NULL;
        f = open_memstream(&out, &olen);
        static const char *const names[] = { "a", "b" };
        struct logview v;
        assert(lv_init(&v, f, names, 2, llen % 7) == 0);
        _cleanup_(cjson_deletep) cJSON *r = cJSON_ParseWithLength(rec, rlen);
        const cJSON *a;
        cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(r, "attempts"))
                lv_mark(&v, (int)json_int(a, "exp", -5, 5, 0), (int)json_int(a, "attempt", 0, INT_MAX, 0), "i-x",
                        (uint64_t)json_int(a, "stdout_from", 0, 1LL << 40, 0));
        /* the log in pieces: stdout of a, stderr of b, stdout of b, some overlapping */
        for (size_t off = 0, k = 0; off < llen; k++) {
                size_t n = MIN(llen - off, (size_t)(1 + (unsigned char)log[off] % 97));
                int exp = (int)(k % 2), err = (int)(k % 3 == 1);
                uint64_t at = v.s[exp][err].at;
                lv_feed(&v, exp, err, at > 3 && k % 5 == 0 ? at - 3 : at, log + off, n);
                off += n;
        }
        lv_flush(&v);
        lv_tail_done(&v);
        lv_free(&v);
        fflush(f);
        assert(terminal_safe((const unsigned char *)out, olen, true));
        fclose(f);
        free(out);
        return 0;
}

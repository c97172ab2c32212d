/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_report.c — report.html from hostile inputs (a status.json, metrics.jsonl and a log tail anyone who can write
 * to the results prefix could have planted): never a crash, never markup from the input, always valid UTF-8.
 * The input is split at its first two NUL bytes: status, metrics, log. */
#include <assert.h>
#include <cjson/cJSON.h>

#include "fuzzinput.h"
#include "run/view/report.h"
#include "util.h"

static bool valid_utf8(const unsigned char *s, size_t n) {
        for (size_t i = 0; i < n;) {
                unsigned char c = s[i];
                size_t len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
                if (!len || i + len > n)
                        return false;
                for (size_t k = 1; k < len; k++)
                        if ((s[i + k] & 0xc0) != 0x80)
                                return false;
                i += len;
        }
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct parts3 parts = split3((const char *)data, size);
        const char *p = parts.p[0], *metrics = parts.p[1], *log = parts.p[2];
        size_t slen = parts.n[0], mlen = parts.n[1], llen = parts.n[2];
        cJSON *st = cJSON_ParseWithLength(p, slen);
        if (!cJSON_IsObject(st)) {
                cJSON_Delete(st);
                st = cJSON_Parse("{\"name\":\"x\",\"experiments\":[{\"name\":\"e\",\"status\":\"running\"}]}");
        }
        struct report_log l = { .experiment = "e", .stream = "stdout", .text = log, .len = llen, .href = "logs/e" };
        struct report_input in = { .status = st, .metrics = metrics, .metrics_len = mlen, .logs = &l, .n_logs = 1,
                                   .now = 1767225600 };
        struct buf b = BUF_INIT(REPORT_MAX_BYTES);
        int r = report_render(&in, &b);
        assert(r == 0 || r == -E2BIG || r == -ENOMEM);
        if (r == 0) {
                assert(!memmem(b.data, b.len, "<script", 7) && !memmem(b.data, b.len, "<img", 4));
                assert(valid_utf8((const unsigned char *)b.data, b.len));
        }
        buf_free(&b);
        cJSON_Delete(st);
        struct buf e = BUF_INIT(8 * size + 16);
        if (report_escape(&e, p, size) == 0 && e.data) {
                assert(!memchr(e.data, '<', e.len) && !memchr(e.data, '>', e.len) && !memchr(e.data, '"', e.len));
                assert(valid_utf8((const unsigned char *)e.data, e.len));
        }
        buf_free(&e);
        return 0;
}

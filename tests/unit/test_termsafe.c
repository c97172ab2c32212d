/* SPDX-License-Identifier: Apache-2.0 */
/* test_termsafe.c — text from S3 made safe for a terminal: OSC 52 (clipboard), window titles, cursor moves, device
 * queries, 8-bit C1 controls and bare control characters go; a log keeps newline, tab, carriage return and colours;
 * status.json's strings are cleaned in place. */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "jsonx.h"
#include "termsafe.h"
#include "util.h"
#include "test.h"

static void check(const char *name, const char *in, bool log_mode, const char *want) {
        char out[512];
        size_t n = term_safe(in, strlen(in), log_mode, out);
        out[n] = 0;
        T_EXPECT_STR(name, out, want);
}

int main(void) {
        static const struct {
                const char *name, *in;
                bool log;
                const char *want;
        } cases[] = {
                { "OSC 52 clipboard write (BEL)", "a\x1b]52;c;ZXZpbA==\x07" "b", false, "ab" },
                { "window title (ST)", "\x1b]0;pwned\x1b\\ok", true, "ok" },
                { "cursor up and erase line: no forged line", "failed\x1b[1A\x1b[2Ksucceeded", true, "failedsucceeded" },
                { "device status query", "x\x1b[6ny", true, "xy" },
                { "SGR colour kept in a log", "\x1b[1;31mred\x1b[0m", true, "\x1b[1;31mred\x1b[0m" },
                { "SGR colour dropped from status", "\x1b[1;31mred\x1b[0m", false, "red" },
                { "tqdm: \\r kept in a log", "10%\r50%\r100%\n", true, "10%\r50%\r100%\n" },
                { "\\r, \\n, tab dropped from status", "a\rb\nc\td", false, "abcd" },
                { "8-bit CSI (U+009B) dropped", "a\xc2\x9b" "31mb", true, "a31mb" },
                { "bell, backspace, DEL", "a\x07\x08\x7f" "b", true, "ab" },
                { "DCS string", "a\x1bPq#0;2;0;0;0\x1b\\b", true, "ab" },
                { "a cut-short escape at the end", "ok\x1b]52;c;AAAA", true, "ok" },
                { "a removal never joins what is left into a C1 control", "\xc2\xc2\x8f\x8f!", true, "!" },
                { "invalid UTF-8 dropped", "a\xff\xc3" "b\xe2\x9c", false, "ab" },
                { "UTF-8 kept", "caf\xc3\xa9 \xe2\x9c\x93", false, "caf\xc3\xa9 \xe2\x9c\x93" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
                check(cases[i].name, cases[i].in, cases[i].log, cases[i].want);
        _cleanup_(cjson_deletep) cJSON *o = cJSON_Parse("{\"outcome\": \"failed\\u001b[1A\\u001b[2Ksucceeded\","
                                                       " \"experiments\": [{\"name\": \"a\\u001b]0;t\\u0007b\"}]}");
        term_safe_json(o);
        T_EXPECT_STR("status.json's outcome cleaned in place",
                     cJSON_GetStringValue(cJSON_GetObjectItem(o, "outcome")), "failedsucceeded");
        T_EXPECT_STR("... and a nested string", cJSON_GetStringValue(cJSON_GetObjectItem(
                             cJSON_GetArrayItem(cJSON_GetObjectItem(o, "experiments"), 0), "name")), "ab");
        return t_summary();
}

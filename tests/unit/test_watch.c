/* SPDX-License-Identifier: Apache-2.0 */
/* test_watch.c — the watcher's pure parsers: the spot interruption notice and the rebalance recommendation, from
 * the EC2 User Guide's own examples (tests/vectors/imds) and from hostile answers. */
#include <stdlib.h>

#include "run/watch/watch.h"
#include "util.h"
#include "test.h"
#include "vectors.h"

static void test_spot_vectors(void) {
        static const struct {
                const char *file, *action;
        } v[] = { { "imds/spot-instance-action-terminate.json", "terminate" },
                  { "imds/spot-instance-action-stop.json", "stop" } };
        for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
                size_t len = 0;
                char *j = t_fixture(v[i].file, &len);
                char action[16] = "", name[200];
                time_t when = 0;
                snprintf(name, sizeof name, "spot notice %s parses", v[i].file);
                T_EXPECT(name, j && spot_parse(j, len, action, &when) == 0);
                snprintf(name, sizeof name, "spot notice %s: action and time", v[i].file);
                T_EXPECT(name, !strcmp(action, v[i].action) && when == 1505722920); /* 2017-09-18T08:22:00Z */
                free(j);
        }
        size_t len = 0;
        char *j = t_fixture("imds/rebalance.json", &len);
        time_t when = 0;
        T_EXPECT("rebalance recommendation parses", j && rebalance_parse(j, len, &when) == 0 &&
                                                            when == 1603786920); /* 2020-10-27T08:22:00Z */
        free(j);
}

static void test_spot_hostile(void) {
        static const struct {
                const char *name, *json;
                int want;
        } cases[] = {
                { "hibernate is an action", "{\"action\":\"hibernate\",\"time\":\"2030-01-01T00:00:00Z\"}", 0 },
                { "an unknown action", "{\"action\":\"explode\",\"time\":\"2030-01-01T00:00:00Z\"}", -EBADMSG },
                { "no time", "{\"action\":\"stop\"}", -EBADMSG },
                { "a time that is no time", "{\"action\":\"stop\",\"time\":\"soon\"}", -EBADMSG },
                { "a number for the action", "{\"action\":1,\"time\":\"2030-01-01T00:00:00Z\"}", -EBADMSG },
                { "not JSON (an HTML error page)", "<html>404</html>", -EBADMSG },
                { "empty", "", -EBADMSG },
                { "an array", "[]", -EBADMSG },
                { "an action longer than the buffer",
                  "{\"action\":\"terminateterminateterminate\",\"time\":\"2030-01-01T00:00:00Z\"}", -EBADMSG },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char action[16] = "untouched";
                time_t when = 0;
                int r = spot_parse(cases[i].json, strlen(cases[i].json), action, &when);
                T_EXPECT(cases[i].name, r == cases[i].want && (r == 0 || !strcmp(action, "untouched")));
        }
        time_t when = 7;
        T_EXPECT("rebalance without noticeTime", rebalance_parse("{}", 2, &when) == -EBADMSG && when == 7);
        T_EXPECT("rebalance: not JSON", rebalance_parse("x", 1, &when) < 0);
}

int main(int argc, char **argv) {
        t_vectors_from(argc, argv);
        test_spot_vectors();
        test_spot_hostile();
        return t_summary();
}

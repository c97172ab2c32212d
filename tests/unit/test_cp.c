/* SPDX-License-Identifier: Apache-2.0 */
/* test_cp.c — `mayfly cp --recursive` of a run's folder: what comes and where it lands (issue 23). */
#include "cmd/cli.h"
#include "test.h"

static void test_run_path(void) {
        static const struct {
                const char *rel;
                bool all;
                const char *want; /* NULL: left out */
        } cases[] = {
                { "status.json", false, "status.json" },
                { "report.html", false, "report.html" },
                { "launch.json", false, "launch.json" },
                { "metrics.jsonl", false, "metrics.jsonl" },
                { "metrics/i-1.jsonl", false, "metrics/i-1.jsonl" },
                { "logs/train/stdout.log", false, "logs/train/stdout.log" },
                { "logs/train/metrics.jsonl", false, "logs/train/metrics.jsonl" },
                { "logs/agent.log", false, "logs/agent.log" },
                { "outputs/model.pt", false, "outputs/model.pt" },
                { "outputs/outputs/a.txt", false, "outputs/a.txt" },
                { "outputs/outputs/sub/b.txt", false, "outputs/sub/b.txt" },
                { "outputs/outputs/outputs/c", false, "outputs/outputs/c" },
                { "ledger/done/a.json", false, NULL },
                { "ledger/instances/i-1.json", false, NULL },
                { "live/train/stdout.000000000000", false, NULL },
                { "live/metrics.000000000000", false, NULL },
                { "checkpoint/train/ck.pt", false, NULL },
                { "ledger/done/a.json", true, "ledger/done/a.json" },
                { "live/train/stdout.000000000000", true, "live/train/stdout.000000000000" },
                { "checkpoint/train/ck.pt", true, "checkpoint/train/ck.pt" },
                { "outputs/outputs/a.txt", true, "outputs/a.txt" },
                { "ledgerx.json", false, "ledgerx.json" },
                { "logs/live/x", false, "logs/live/x" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char name[160];
                snprintf(name, sizeof name, "cp run path %s%s", cases[i].rel, cases[i].all ? " --all" : "");
                const char *got = cp_run_path(cases[i].rel, cases[i].all);
                T_EXPECT_STR(name, got ? got : "(left out)", cases[i].want ? cases[i].want : "(left out)");
        }
}

int main(int argc, char **argv) {
        test_run_path();
        return t_summary();
}

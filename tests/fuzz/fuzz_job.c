/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_job.c — the job-spec parser: any bytes give 0 or -EINVAL with a one-line message, never a crash. */
#include <assert.h>

#include "run/base/job.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct job j;
        char err[512] = "";
        int r = job_parse((const char *)data, size, &j, err, sizeof err);
        if (r == 0) {
                assert(j.name && j.source && j.results && j.n_experiments >= 1);
                assert(str_has_suffix(j.results, "/"));
                for (size_t i = 0; i < j.n_experiments; i++)
                        assert(j.experiments[i].argv && j.experiments[i].argv[0]);
                job_free(&j);
        } else {
                assert(err[0] && !strchr(err, '\n'));
        }
        return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* cmd_gpu.c — `mayfly gpu [--watch SECONDS]`: what the agent sees of the GPUs (NVML, else nvidia-smi). */
#include <getopt.h>

#include "cmd/cli.h"
#include "run/watch/gpu.h"

int cmd_gpu(int argc, char **argv) {
        static const struct option opts[] = { { "watch", required_argument, NULL, 'w' },
                                              { "help", no_argument, NULL, 'h' }, { 0 } };
        static const char usage[] = "usage: mayfly gpu [--watch SECONDS]\n\n"
                                    "  Prints the GPU inventory as JSON (NVML through dlopen, else nvidia-smi); with\n"
                                    "  --watch, one utilisation/memory sample per second for that long.\n"
                                    "  MAYFLY_NVML_LIBRARY names another NVML library.\n";
        long watch = 0;
        int ch;
        optind = 1;
        while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                if (ch == 'w' && parse_int(optarg, 1, 86400, &watch) == 0)
                        continue;
                fputs(usage, ch == 'h' ? stdout : stderr);
                return ch == 'h' ? EXIT_OK : EXIT_USAGE;
        }
        if (optind != argc) {
                fputs(usage, stderr);
                return EXIT_USAGE;
        }
        struct gpu *g = NULL;
        char err[1024];
        int r = gpu_open(&g, env_nonempty("MAYFLY_NVML_LIBRARY"), NULL, err, sizeof err);
        if (r < 0) {
                log_error("no GPU: %s", err);
                return EXIT_NOTFOUND;
        }
        struct gpu_state st;
        r = gpu_query(g, &st, err, sizeof err);
        _cleanup_free_ char *js = NULL;
        if (r >= 0 && gpu_state_to_json(&st, true, &js) == 0)
                printf("%s\n", js);
        else
                log_error("GPU query failed: %s", err);
        for (long i = 0; r >= 0 && i < watch; i++) {
                sleep(1);
                if (gpu_query(g, &st, err, sizeof err) < 0) {
                        log_error("GPU query failed: %s", err);
                        r = -EIO;
                        break;
                }
                printf("t=%lds", i + 1);
                for (int d = 0; d < st.count; d++) {
                        if (st.dev[d].util == GPU_UTIL_UNKNOWN)
                                printf("  gpu%d util=n/a", d);
                        else
                                printf("  gpu%d util=%u%%", d, st.dev[d].util);
                        if (st.dev[d].mem_used != GPU_MEM_UNKNOWN)
                                printf(" mem=%lluMiB", (unsigned long long)(st.dev[d].mem_used >> 20));
                }
                printf("\n");
                fflush(stdout);
        }
        gpu_close(g);
        return r < 0 ? EXIT_FAIL : EXIT_OK;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* test_gpu.c — the GPU module: nvidia-smi CSV parsing, idle detection and JSON (pure), then gpu_open/gpu_query
 * through the fake libnvidia-ml.so.1 ($MAYFLY_TEST_FAKE_NVML, else $MAYFLY_BUILD/fakes/nvml/, else
 * build/fakes/nvml/) and the fake nvidia-smi ($MAYFLY_TEST_FAKE_SMI, else tests/fakes/nvml/nvidia-smi), both
 * driven by a state file under a mkdtemp directory. */
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "run/watch/gpu.h"
#include "run/watch/gpu_smi.h"
#include "test.h"
#include "util.h"

#define MiB (1024ull * 1024ull)
#define V100_TOTAL 16944988160ull /* the fake's default, 16160 MiB */

static char tmpdir[PATH_MAX], state_path[PATH_MAX + 16];
static char fake_lib[PATH_MAX], fake_smi[PATH_MAX], legacy_lib[PATH_MAX], missing_lib[PATH_MAX + 32];

static bool has(const char *s, const char *sub) { return s && strstr(s, sub) != NULL; }

/* Replaces the state file atomically (the fakes re-read it on every call). */
static void write_state(const char *text) {
        char tmp[sizeof state_path + 8];
        snprintf(tmp, sizeof tmp, "%s.tmp", state_path);
        _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        size_t n = strlen(text);
        if (fd < 0 || write(fd, text, n) != (ssize_t)n || rename(tmp, state_path) < 0)
                t_result("write state file", 0, "%s: %s", tmp, strerror(errno));
}

static bool no_zombies(void) {
        errno = 0;
        return waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD;
}

/* ---- pure ---- */

struct csv_case {
        const char *name, *text;
        size_t len; /* 0: strlen */
        int want;   /* return value */
        int count;
        const char *name0, *uuid0, *driver;
        uint64_t total0, used0;
        unsigned util0;
        const char *name_last;
        unsigned util_last;
};

#define NUL_LINE "0, A\0B, GPU-a, 1.0, 10, 1, 1\n"
#define BAD(n, t) { .name = (n), .text = (t), .want = -MF_EPARSE }

static void test_csv(void) {
        static char many[4096];
        struct buf b = BUF_INIT(sizeof many);
        for (int i = 0; i < 20; i++)
                (void)buf_printf(&b, "%d, NVIDIA A10G, GPU-%02d, 550.54.15, 23028, %d, %d\n", i, i, i, i);
        snprintf(many, sizeof many, "%s", b.data ? b.data : "");
        buf_free(&b);

        const struct csv_case t[] = {
                { "csv h100 capture line",
                  "0, NVIDIA H100 80GB HBM3, GPU-00000000-0000-0000-0000-000000000000, 590.48.01, 81559, 0, 0\n", 0,
                  1, 1, "NVIDIA H100 80GB HBM3", "GPU-00000000-0000-0000-0000-000000000000", "590.48.01",
                  81559 * MiB, 0, 0, "NVIDIA H100 80GB HBM3", 0 },
                { "csv extra spaces, CRLF, blank line, no final newline",
                  "  0 ,  Tesla V100-SXM2-16GB ,GPU-a , 535.104.05 ,16160,  100 , 97 \r\n\n"
                  "1,Tesla T4,GPU-b,535.104.05,15360,5,3",
                  0, 2, 2, "Tesla V100-SXM2-16GB", "GPU-a", "535.104.05", 16160 * MiB, 100 * MiB, 97, "Tesla T4", 3 },
                { "csv [N/A] utilisation (MIG)", "0, NVIDIA H200, GPU-c, 590.48.01, 143771, 0, [N/A]\n", 0, 1, 1,
                  "NVIDIA H200", "GPU-c", "590.48.01", 143771 * MiB, 0, GPU_UTIL_UNKNOWN, "NVIDIA H200",
                  GPU_UTIL_UNKNOWN },
                { "csv [Not Supported] memory", "0, Tesla K80, GPU-d, 470.1, [Not Supported], [N/A], 5\n", 0, 1, 1,
                  "Tesla K80", "GPU-d", "470.1", GPU_MEM_UNKNOWN, GPU_MEM_UNKNOWN, 5, "Tesla K80", 5 },
                { "csv [N/A] name and uuid", "0, [N/A], [N/A], 1.0, 1, 0, 0\n", 0, 1, 1, "", "", "1.0", MiB, 0, 0,
                  "", 0 },
                { "csv empty output", "", 0, 0, 0, NULL, NULL, "", 0, 0, 0, NULL, 0 },
                { "csv blank lines only", "\n  \r\n\n", 0, 0, 0, NULL, NULL, "", 0, 0, 0, NULL, 0 },
                { "csv more than GPU_MAX rows", many, 0, 20, GPU_MAX, "NVIDIA A10G", "GPU-00", "550.54.15",
                  23028 * MiB, 0, 0, "NVIDIA A10G", 15 },
                BAD("csv garbage: NVML error text",
                  "Failed to initialize NVML: Driver/library version mismatch\n"),
                BAD("csv garbage: driver not loaded text",
                  "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the "
                  "latest NVIDIA driver is installed and running.\n"),
                BAD("csv garbage after a good line",
                  "0, A, GPU-a, 1.0, 10, 1, 1\nUnable to determine the device handle for GPU 0000:00:1E.0: Unknown "
                  "Error\n"),
                BAD("csv header line (format without noheader)",
                  "index, name, uuid, driver_version, memory.total [MiB], memory.used [MiB], utilization.gpu [%]\n"),
                BAD("csv with units", "0, A, GPU-a, 1.0, 16160 MiB, 0 MiB, 0 %\n"),
                BAD("csv six fields", "0, A, GPU-a, 1.0, 10, 1\n"),
                BAD("csv eight fields", "0, A, GPU-a, 1.0, 10, 1, 1, 1\n"),
                BAD("csv util not a number", "0, A, GPU-a, 1.0, 10, 1, abc\n"),
                BAD("csv util above 100", "0, A, GPU-a, 1.0, 10, 1, 101\n"),
                BAD("csv negative memory", "0, A, GPU-a, 1.0, -10, 1, 1\n"),
                BAD("csv memory overflows bytes", "0, A, GPU-a, 1.0, 99999999999999999, 1, 1\n"),
                BAD("csv index not a number", "x, A, GPU-a, 1.0, 10, 1, 1\n"),
                BAD("csv empty name field", "0, , GPU-a, 1.0, 10, 1, 1\n"),
                { .name = "csv embedded NUL", .text = NUL_LINE, .len = sizeof NUL_LINE - 1, .want = -MF_EPARSE },
        };
        for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
                struct gpu_state s;
                memset(&s, 0x5a, sizeof s);
                s.count = -7;
                int r = gpu_parse_smi_csv(t[i].text, t[i].len ? t[i].len : strlen(t[i].text), &s);
                if (t[i].want < 0) {
                        t_result(t[i].name, r == t[i].want && s.count == -7, "r=%d (want %d), count=%d untouched?",
                                 r, t[i].want, s.count);
                        continue;
                }
                bool ok = r == t[i].want && s.count == t[i].count && !strcmp(s.source, "nvidia-smi") &&
                          !strcmp(s.driver, t[i].driver);
                if (ok && t[i].count > 0) {
                        const struct gpu_device *d = &s.dev[0], *l = &s.dev[s.count - 1];
                        ok = !strcmp(d->name, t[i].name0) && !strcmp(d->uuid, t[i].uuid0) &&
                             d->mem_total == t[i].total0 && d->mem_used == t[i].used0 && d->util == t[i].util0 &&
                             !strcmp(l->name, t[i].name_last) && l->util == t[i].util_last;
                }
                t_result(t[i].name, ok, "r=%d count=%d driver=%s name0=%s uuid0=%s total0=%llu used0=%llu util0=%u",
                         r, s.count, s.driver, s.count > 0 ? s.dev[0].name : "-", s.count > 0 ? s.dev[0].uuid : "-",
                         s.count > 0 ? (unsigned long long)s.dev[0].mem_total : 0ull,
                         s.count > 0 ? (unsigned long long)s.dev[0].mem_used : 0ull,
                         s.count > 0 ? s.dev[0].util : 0u);
        }
}

static void test_idle(void) {
        const struct { const char *name; int count; unsigned u[3]; bool want; } t[] = {
                { "idle: no GPUs is not idle", 0, { 0 }, false },
                { "idle: one GPU at 0%", 1, { 0 }, true },
                { "idle: all of three at 0%", 3, { 0, 0, 0 }, true },
                { "idle: one of three busy", 3, { 0, 5, 0 }, false },
                { "idle: one GPU at 100%", 1, { 100 }, false },
                { "idle: unknown utilisation is not idle", 2, { 0, GPU_UTIL_UNKNOWN }, false },
        };
        for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
                struct gpu_state s = { .count = t[i].count };
                for (int k = 0; k < t[i].count; k++)
                        s.dev[k].util = t[i].u[k];
                T_EXPECT(t[i].name, gpu_all_idle(&s) == t[i].want);
        }
        T_EXPECT("idle: NULL state", !gpu_all_idle(NULL));
}

static void test_json(void) {
        struct gpu_state s = { .count = 2, .driver = "535.104.05", .source = "nvml" };
        s.dev[0] = (struct gpu_device){ "Tesla V100-SXM2-16GB", "GPU-a", 16160 * MiB, 100 * MiB, 97 };
        s.dev[1] = (struct gpu_device){ "A \"quoted\" name", "GPU-b", GPU_MEM_UNKNOWN, GPU_MEM_UNKNOWN,
                                        GPU_UTIL_UNKNOWN };
        _cleanup_free_ char *inv = NULL, *samples = NULL, *empty = NULL;
        T_EXPECT("json inventory returns 0", gpu_state_to_json(&s, false, &inv) == 0);
        T_EXPECT_STR("json inventory", inv,
                     "{\"count\":2,\"driver\":\"535.104.05\",\"source\":\"nvml\",\"devices\":["
                     "{\"name\":\"Tesla V100-SXM2-16GB\",\"uuid\":\"GPU-a\",\"memory_total_mib\":16160},"
                     "{\"name\":\"A \\\"quoted\\\" name\",\"uuid\":\"GPU-b\",\"memory_total_mib\":null}]}");
        T_EXPECT("json samples returns 0", gpu_state_to_json(&s, true, &samples) == 0);
        T_EXPECT_STR("json with samples", samples,
                     "{\"count\":2,\"driver\":\"535.104.05\",\"source\":\"nvml\",\"devices\":["
                     "{\"name\":\"Tesla V100-SXM2-16GB\",\"uuid\":\"GPU-a\",\"memory_total_mib\":16160,"
                     "\"memory_used_mib\":100,\"util\":97},"
                     "{\"name\":\"A \\\"quoted\\\" name\",\"uuid\":\"GPU-b\",\"memory_total_mib\":null,"
                     "\"memory_used_mib\":null,\"util\":null}]}");
        struct gpu_state z = { .count = 0, .source = "nvidia-smi" };
        T_EXPECT("json no GPUs returns 0", gpu_state_to_json(&z, true, &empty) == 0);
        T_EXPECT_STR("json no GPUs", empty, "{\"count\":0,\"driver\":\"\",\"source\":\"nvidia-smi\",\"devices\":[]}");
}

/* ---- through the fakes ---- */

/* gpu_open + gpu_query; the state on success, or the failure in *ret_r. */
static struct gpu *open_query(const char *lib, const char *smi, struct gpu_state *s, int *ret_q, char *err,
                              size_t errlen) {
        struct gpu *g = NULL;
        *ret_q = gpu_open(&g, lib, smi, err, errlen);
        if (*ret_q < 0)
                return NULL;
        *ret_q = gpu_query(g, s, err, errlen);
        return g;
}

static void test_nvml_basic(void) {
        char err[1024];
        struct gpu_state s = { 0 };
        int r;

        unlink(state_path); /* no file: the fake's defaults */
        struct gpu *g = open_query(fake_lib, fake_smi, &s, &r, err, sizeof err);
        t_result("nvml default: 1 GPU", g && r == 1 && s.count == 1 && !strcmp(s.source, "nvml") &&
                                                !strcmp(gpu_source(g), "nvml") && err[0] == 0,
                 "r=%d count=%d source=%s err=%s", r, s.count, s.source, err);
        t_result("nvml default: inventory", s.count == 1 && !strcmp(s.dev[0].name, "Tesla V100-SXM2-16GB") &&
                                                    !strcmp(s.driver, "535.104.05") && s.dev[0].mem_total == V100_TOTAL &&
                                                    s.dev[0].mem_used == 0 && s.dev[0].util == 0 &&
                                                    str_has_prefix(s.dev[0].uuid, "GPU-"),
                 "name=%s driver=%s total=%llu uuid=%s", s.dev[0].name, s.driver,
                 (unsigned long long)s.dev[0].mem_total, s.dev[0].uuid);
        T_EXPECT("nvml default: all idle", gpu_all_idle(&s));
        gpu_close(g);

        write_state("# two GPUs\ncount=2\ndriver=590.48.01\n"
                    "name0=NVIDIA H100 80GB HBM3\nuuid0=GPU-11111111-2222-3333-4444-555555555555\n"
                    "mem_total0=85520809984\nmem_used0=1073741824\nmem_reserved0=268435456\nutil0=97\n"
                    "name1=NVIDIA H100 80GB HBM3\nuuid1=GPU-66666666-2222-3333-4444-555555555555\n"
                    "mem_total1=85520809984\nutil1=0\n");
        g = open_query(fake_lib, fake_smi, &s, &r, err, sizeof err);
        t_result("nvml 2 GPUs: count", g && r == 2 && s.count == 2, "r=%d count=%d err=%s", r, s.count, err);
        t_result("nvml 2 GPUs: values",
                 s.count == 2 && !strcmp(s.driver, "590.48.01") && !strcmp(s.dev[0].name, "NVIDIA H100 80GB HBM3") &&
                         !strcmp(s.dev[0].uuid, "GPU-11111111-2222-3333-4444-555555555555") &&
                         !strcmp(s.dev[1].uuid, "GPU-66666666-2222-3333-4444-555555555555") &&
                         s.dev[0].mem_total == 85520809984ull && s.dev[0].util == 97 && s.dev[1].util == 0,
                 "driver=%s name0=%s util0=%u util1=%u", s.driver, s.dev[0].name, s.dev[0].util, s.dev[1].util);
        /* nvmlMemory_v2_t.used is allocated memory only; v1 would add the 256 MiB reserved */
        t_result("nvml memory used from nvmlDeviceGetMemoryInfo_v2", s.dev[0].mem_used == 1073741824ull,
                 "used=%llu", (unsigned long long)s.dev[0].mem_used);
        T_EXPECT("nvml 2 GPUs: not idle", !gpu_all_idle(&s));

        /* utilisation changes between two queries on the same handle */
        write_state("count=2\nutil0=0\nutil1=0\n");
        r = gpu_query(g, &s, err, sizeof err);
        T_EXPECT("nvml requery: both idle", r == 2 && s.dev[0].util == 0 && s.dev[1].util == 0 && gpu_all_idle(&s));
        write_state("count=2\nutil0=0\nutil1=55\nmem_used1=2147483648\n");
        r = gpu_query(g, &s, err, sizeof err);
        t_result("nvml requery: GPU 1 busy again", r == 2 && s.dev[1].util == 55 && s.dev[1].mem_used == 2 * 1024 * MiB &&
                                                            !gpu_all_idle(&s),
                 "r=%d util1=%u used1=%llu", r, s.dev[1].util, (unsigned long long)s.dev[1].mem_used);

        /* a GPU falls off the bus mid-run: -ENODEV (reopen), state untouched */
        write_state("count=2\nutil1=55\nerror1=GPU_IS_LOST\n");
        struct gpu_state keep = s;
        r = gpu_query(g, &s, err, sizeof err);
        t_result("nvml GPU lost mid-run: -ENODEV", r == -ENODEV && has(err, "GPU is lost") && has(err, "GPU 1") &&
                                                          !memcmp(&keep, &s, sizeof s),
                 "r=%d err=%s", r, err);
        gpu_close(g);
        gpu_close(NULL);
        T_EXPECT("gpu_query(NULL) is -EINVAL", gpu_query(NULL, &s, err, sizeof err) == -EINVAL);
}

static void test_nvml_boot_race(void) {
        char err[1024];
        struct gpu *g = NULL;
        write_state("count=2\ninit_error=DRIVER_NOT_LOADED\n");
        int r = gpu_open(&g, fake_lib, fake_smi, err, sizeof err);
        t_result("boot: DRIVER_NOT_LOADED is -ENODEV", r == -ENODEV && g == NULL, "r=%d", r);
        t_result("boot: NVML reason via nvmlErrorString", has(err, "nvmlInit_v2") && has(err, "Driver Not Loaded") &&
                                                                  has(err, "NVML error 9"),
                 "err=%s", err);
        t_result("boot: nvidia-smi reason (exit 9)", has(err, "; nvidia-smi: exit 9: NVIDIA-SMI has failed because it "
                                                              "couldn't communicate with the NVIDIA driver"),
                 "err=%s", err);

        /* the agent retries gpu_open until a deadline; the driver comes up on the third try */
        int tries = 0;
        for (double deadline = now_mono() + 10; now_mono() < deadline && tries < 10;) {
                tries++;
                if (tries == 3)
                        write_state("count=2\n");
                if (gpu_open(&g, fake_lib, fake_smi, err, sizeof err) == 0)
                        break;
        }
        struct gpu_state s = { 0 };
        r = g ? gpu_query(g, &s, err, sizeof err) : -1;
        t_result("boot: success once the driver is loaded", g && tries == 3 && r == 2 && !strcmp(s.source, "nvml"),
                 "tries=%d r=%d source=%s err=%s", tries, r, s.source, err);
        gpu_close(g);

        write_state("init_error=LIB_RM_VERSION_MISMATCH\n");
        g = NULL;
        r = gpu_open(&g, fake_lib, fake_smi, err, sizeof err);
        t_result("boot: driver/library mismatch named", r == -ENODEV && has(err, "Driver/library version mismatch") &&
                                                               has(err, "exit 18"),
                 "r=%d err=%s", r, err);
}

static void test_nvml_edges(void) {
        char err[1024];
        struct gpu_state s = { 0 };
        int r;

        write_state("count=20\nutil19=50\n");
        struct gpu *g = open_query(fake_lib, fake_smi, &s, &r, err, sizeof err);
        t_result("nvml count > GPU_MAX: capped and said", r == 20 && s.count == GPU_MAX && has(err, "20 GPUs present") &&
                                                                 gpu_all_idle(&s),
                 "r=%d count=%d err=%s", r, s.count, err);
        gpu_close(g);

        write_state("count=3\nhandle_error1=NO_PERMISSION\nuuid2=GPU-third\n");
        g = open_query(fake_lib, fake_smi, &s, &r, err, sizeof err);
        t_result("nvml NO_PERMISSION handle: counted, skipped, said",
                 r == 3 && s.count == 2 && !strcmp(s.dev[1].uuid, "GPU-third") && has(err, "GPU 1") &&
                         has(err, "Insufficient Permissions"),
                 "r=%d count=%d uuid1=%s err=%s", r, s.count, s.dev[1].uuid, err);
        gpu_close(g);

        write_state("count=2\nutil_error0=NOT_SUPPORTED\nutil1=0\n");
        g = open_query(fake_lib, fake_smi, &s, &r, err, sizeof err);
        t_result("nvml utilisation NOT_SUPPORTED (MIG): unknown, not idle",
                 r == 2 && s.dev[0].util == GPU_UTIL_UNKNOWN && s.dev[1].util == 0 && !gpu_all_idle(&s) && !err[0],
                 "r=%d util0=%u err=%s", r, s.dev[0].util, err);
        gpu_close(g);

        write_state("name0=An implausibly long GPU name that does not fit in the ninety-six bytes NVML promises "
                    "for names, really\n");
        g = open_query(fake_lib, fake_smi, &s, &r, err, sizeof err);
        t_result("nvml name INSUFFICIENT_SIZE: empty name, rest read", r == 1 && s.dev[0].name[0] == 0 &&
                                                                               s.dev[0].mem_total == V100_TOTAL,
                 "r=%d name=%s", r, s.dev[0].name);
        gpu_close(g);

        write_state("count=0\n");
        g = open_query(fake_lib, fake_smi, &s, &r, err, sizeof err);
        T_EXPECT("nvml zero GPUs: 0, not idle", g && r == 0 && s.count == 0 && !gpu_all_idle(&s));
        gpu_close(g);

        write_state("count_error=UNKNOWN\n");
        g = open_query(fake_lib, fake_smi, &s, &r, err, sizeof err);
        t_result("nvml count error named", g && r == -EIO && has(err, "nvmlDeviceGetCount_v2: Unknown Error"),
                 "r=%d err=%s", r, err);
        gpu_close(g);

        /* a library without any NVML symbol: clean message, then nvidia-smi */
        write_state("count=1\n");
        g = NULL;
        r = gpu_open(&g, "libc.so.6", fake_smi, err, sizeof err);
        t_result("nvml library without nvmlInit: falls back", r == 0 && g && !strcmp(gpu_source(g), "nvidia-smi") &&
                                                                     has(err, "libc.so.6: no nvmlInit_v2/nvmlInit"),
                 "r=%d err=%s", r, err);
        gpu_close(g);
}

static void test_smi_fallback(void) {
        char err[1024], path_save[4096] = "", bin[PATH_MAX + 8], link[PATH_MAX + 32];
        struct gpu_state s = { 0 };
        int r;

        write_state("count=2\ndriver=535.104.05\nname0=Tesla V100-SXM2-16GB\nmem_used0=1073741824\nutil0=97\n"
                    "name1=Tesla T4\nuuid1=GPU-t4\nmem_total1=16106127360\nutil1=0\n");
        struct gpu *g = open_query(missing_lib, fake_smi, &s, &r, err, sizeof err);
        t_result("smi fallback: missing library", g && !strcmp(gpu_source(g), "nvidia-smi") && r == 2 &&
                                                          s.count == 2 && !strcmp(s.source, "nvidia-smi"),
                 "r=%d count=%d err=%s", r, s.count, err);
        t_result("smi fallback: values", s.count == 2 && !strcmp(s.driver, "535.104.05") &&
                                                 !strcmp(s.dev[0].name, "Tesla V100-SXM2-16GB") &&
                                                 s.dev[0].mem_total == V100_TOTAL && s.dev[0].mem_used == 1024 * MiB &&
                                                 s.dev[0].util == 97 && !strcmp(s.dev[1].name, "Tesla T4") &&
                                                 !strcmp(s.dev[1].uuid, "GPU-t4") &&
                                                 s.dev[1].mem_total == 15360 * MiB && s.dev[1].util == 0,
                 "driver=%s name0=%s total0=%llu used0=%llu util0=%u name1=%s", s.driver, s.dev[0].name,
                 (unsigned long long)s.dev[0].mem_total, (unsigned long long)s.dev[0].mem_used, s.dev[0].util,
                 s.dev[1].name);
        write_state("count=2\nutil0=0\nutil1=0\n");
        r = g ? gpu_query(g, &s, err, sizeof err) : -1;
        T_EXPECT("smi fallback: requery sees the change", r == 2 && gpu_all_idle(&s));
        write_state("count=2\nutil_error1=NOT_SUPPORTED\n");
        r = g ? gpu_query(g, &s, err, sizeof err) : -1;
        T_EXPECT("smi fallback: [N/A] utilisation", r == 2 && s.dev[1].util == GPU_UTIL_UNKNOWN && !gpu_all_idle(&s));
        write_state("count=2\nerror1=GPU_IS_LOST\n");
        r = g ? gpu_query(g, &s, err, sizeof err) : -1;
        t_result("smi fallback: GPU lost is -ENODEV", r == -ENODEV && has(err, "exit 15"), "r=%d err=%s", r, err);
        write_state("count=18\n");
        r = g ? gpu_query(g, &s, err, sizeof err) : -1;
        t_result("smi fallback: count > GPU_MAX capped", r == 18 && s.count == GPU_MAX && has(err, "18 GPUs present"),
                 "r=%d count=%d err=%s", r, s.count, err);
        gpu_close(g);

        g = NULL;
        char nosmi[sizeof tmpdir + 32];
        snprintf(nosmi, sizeof nosmi, "%s/nope/nvidia-smi", tmpdir);
        r = gpu_open(&g, missing_lib, nosmi, err, sizeof err);
        t_result("neither: -ENODEV with both reasons", r == -ENODEV && g == NULL &&
                                                               has(err, "cannot open shared object file") &&
                                                               has(err, "; nvidia-smi: ") && has(err, "No such file"),
                 "r=%d err=%s", r, err);

        /* "nvidia-smi" searched in PATH */
        const char *p = getenv("PATH");
        snprintf(path_save, sizeof path_save, "%s", p ? p : "");
        snprintf(bin, sizeof bin, "%s/bin", tmpdir);
        snprintf(link, sizeof link, "%s/nvidia-smi", bin);
        mkdir(bin, 0700);
        if (symlink(fake_smi, link) < 0 && errno != EEXIST)
                t_result("symlink fake nvidia-smi", 0, "%s", strerror(errno));
        char newpath[sizeof bin + 32];
        snprintf(newpath, sizeof newpath, "%s:/usr/bin:/bin", bin);
        setenv("PATH", newpath, 1);
        write_state("count=1\n");
        r = gpu_open(&g, missing_lib, NULL, err, sizeof err);
        t_result("smi found in PATH", r == 0 && g && !strcmp(gpu_source(g), "nvidia-smi"), "r=%d err=%s", r, err);
        gpu_close(g);
        g = NULL;
        setenv("PATH", "/nonexistent-mayfly", 1);
        r = gpu_open(&g, missing_lib, NULL, err, sizeof err);
        t_result("smi not in PATH: named", r == -ENODEV && has(err, "nvidia-smi: nvidia-smi not found in PATH"),
                 "r=%d err=%s", r, err);
        setenv("PATH", path_save, 1);
        unlink(link);
        rmdir(bin);

        /* error text where data is expected */
        write_state("smi_output=Failed to initialize NVML: Driver/library version mismatch\n");
        r = gpu_open(&g, missing_lib, fake_smi, err, sizeof err);
        t_result("smi garbage on exit 0: refused", r == -ENODEV && has(err, "nvidia-smi: unexpected output: Failed"),
                 "r=%d err=%s", r, err);

        /* a hung nvidia-smi is killed and reaped */
        write_state("smi_sleep=30\n");
        setenv("MAYFLY_NVIDIA_SMI_TIMEOUT_MS", "300", 1);
        double t0 = now_mono();
        r = gpu_open(&g, missing_lib, fake_smi, err, sizeof err);
        double took = now_mono() - t0;
        unsetenv("MAYFLY_NVIDIA_SMI_TIMEOUT_MS");
        t_result("smi hang: killed after the timeout", r == -ENODEV && has(err, "no answer within 300 ms") && took < 3,
                 "r=%d took=%.2fs err=%s", r, took, err);
        T_EXPECT("smi: every child reaped", no_zombies());
}

static void test_legacy(void) {
        char err[1024];
        struct gpu_state s = { 0 };
        int r;
        if (access(legacy_lib, R_OK) < 0) {
                printf("SKIP legacy NVML (no _v2 symbols): %s not built (cc -DFAKE_NVML_LEGACY ...)\n", legacy_lib);
                return;
        }
        write_state("count=3\nhandle_error1=NO_PERMISSION\nmem_used0=1073741824\nmem_reserved0=268435456\n");
        struct gpu *g = open_query(legacy_lib, fake_smi, &s, &r, err, sizeof err);
        t_result("legacy NVML: v1 symbols", g && !strcmp(gpu_source(g), "nvml") && r == 2 && s.count == 2,
                 "r=%d count=%d err=%s", r, s.count, err);
        t_result("legacy NVML: v1 memory (used includes reserved)", s.dev[0].mem_used == 1280 * MiB, "used=%llu",
                 (unsigned long long)s.dev[0].mem_used);
        gpu_close(g);
}

/* The fake itself behaves as NVML.md §5 says (other tests rely on it). */
static void test_fake_itself(void) {
        typedef int (*f_void)(void);
        typedef int (*f_count)(unsigned *);
        typedef int (*f_handle)(unsigned, void **);
        typedef int (*f_str)(void *, char *, unsigned);
        typedef int (*f_mem2)(void *, void *);
        typedef int (*f_pages)(void *, int, unsigned *, unsigned long long *);
        typedef const char *(*f_estr)(int);
        write_state("count=1\nretired_pages0=3\n");
        void *dl = dlopen(fake_lib, RTLD_NOW | RTLD_LOCAL);
        if (!dl) {
                t_result("fake: dlopen", 0, "%s", dlerror());
                return;
        }
        f_void init = (f_void)dlsym(dl, "nvmlInit_v2"), shut = (f_void)dlsym(dl, "nvmlShutdown");
        f_count count = (f_count)dlsym(dl, "nvmlDeviceGetCount_v2");
        f_handle handle = (f_handle)dlsym(dl, "nvmlDeviceGetHandleByIndex_v2");
        f_str name = (f_str)dlsym(dl, "nvmlDeviceGetName");
        f_mem2 mem2 = (f_mem2)dlsym(dl, "nvmlDeviceGetMemoryInfo_v2");
        f_pages pages = (f_pages)dlsym(dl, "nvmlDeviceGetRetiredPages");
        f_estr estr = (f_estr)dlsym(dl, "nvmlErrorString");
        bool syms = init && shut && count && handle && name && mem2 && pages && estr && dlsym(dl, "nvmlInit") &&
                    dlsym(dl, "nvmlInitWithFlags") && dlsym(dl, "nvmlDeviceGetPciInfo_v3") &&
                    dlsym(dl, "nvmlEventSetWait_v2") && dlsym(dl, "nvmlDeviceGetCurrentClocksEventReasons");
        T_EXPECT("fake: exports versioned and v1 symbols", syms);
        if (!syms) {
                dlclose(dl);
                return;
        }
        unsigned n = 0;
        void *h = NULL;
        char b[96];
        T_EXPECT("fake: UNINITIALIZED before init", count(&n) == 1);
        T_EXPECT("fake: init twice (ref-counted)", init() == 0 && init() == 0);
        T_EXPECT("fake: one shutdown keeps it up", shut() == 0 && count(&n) == 0 && n == 1);
        T_EXPECT("fake: last shutdown takes it down", shut() == 0 && count(&n) == 1);
        T_EXPECT("fake: extra shutdown reports no error", shut() == 0);
        T_EXPECT("fake: init", init() == 0 && handle(0, &h) == 0 && h);
        T_EXPECT("fake: index out of range", handle(1, &h) == 2);
        T_EXPECT("fake: short name buffer is INSUFFICIENT_SIZE", name(h, b, 8) == 7 && name(h, b, sizeof b) == 0);
        T_EXPECT("fake: unknown handle is INVALID_ARGUMENT", name((void *)b, b, sizeof b) == 2);
        struct { unsigned version; unsigned long long total, reserved, free, used; } m = { .version = 2 };
        T_EXPECT("fake: memory v2 wrong version is ARGUMENT_VERSION_MISMATCH", mem2(h, &m) == 25);
        m.version = 0x02000028;
        T_EXPECT("fake: memory v2 right version", mem2(h, &m) == 0 && m.total == V100_TOTAL);
        unsigned pc = 0;
        unsigned long long addr[3];
        T_EXPECT("fake: retired pages size query", pages(h, 0, &pc, NULL) == 7 && pc == 3 &&
                                                           pages(h, 0, &pc, addr) == 0);
        T_EXPECT_STR("fake: nvmlErrorString(9)", estr(9), "Driver Not Loaded");
        T_EXPECT("fake: balanced shutdown", shut() == 0);
        dlclose(dl);
}

/* ---- setup ---- */

static bool locate(char *out, size_t outlen, const char *env, const char *fallback) {
        const char *p = env_nonempty(env);
        char rel[PATH_MAX];
        if (!p) {
                snprintf(rel, sizeof rel, "%s", fallback);
                p = rel;
        }
        if (!realpath(p, out)) {
                snprintf(out, outlen, "%s", p);
                return false;
        }
        return true;
}

int main(int argc, char **argv) {
        char libdefault[PATH_MAX];
        const char *build = env_nonempty("MAYFLY_BUILD");
        snprintf(libdefault, sizeof libdefault, "%s/fakes/nvml/libnvidia-ml.so.1", build ? build : "build");
        bool have_lib = locate(fake_lib, sizeof fake_lib, "MAYFLY_TEST_FAKE_NVML", libdefault);
        bool have_smi = locate(fake_smi, sizeof fake_smi, "MAYFLY_TEST_FAKE_SMI", "tests/fakes/nvml/nvidia-smi");
        snprintf(libdefault, sizeof libdefault, "%s/fakes/nvml/legacy/libnvidia-ml.so.1", build ? build : "build");
        locate(legacy_lib, sizeof legacy_lib, "MAYFLY_TEST_FAKE_NVML_LEGACY", libdefault);

        test_csv();
        test_idle();
        test_json();

        snprintf(tmpdir, sizeof tmpdir, "%s/mayfly-gpu-XXXXXX", env_nonempty("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(tmpdir)) {
                t_result("mkdtemp", 0, "%s", strerror(errno));
                return t_summary();
        }
        snprintf(state_path, sizeof state_path, "%s/state", tmpdir);
        snprintf(missing_lib, sizeof missing_lib, "%s/nope/libnvidia-ml.so.1", tmpdir);
        setenv("FAKE_NVML_STATE", state_path, 1);

        if (!have_lib)
                t_result("gpu fake library (SKIPPED: NVML tests not run)", 0,
                         "%s not found; build it: cc -std=gnu11 -shared -fPIC -O2 -Wall -o "
                         "build/fakes/nvml/libnvidia-ml.so.1 tests/fakes/nvml/fake_nvml.c, or set MAYFLY_TEST_FAKE_NVML",
                         fake_lib);
        if (!have_smi || access(fake_smi, X_OK) < 0)
                t_result("gpu fake nvidia-smi (SKIPPED: fallback tests not run)", 0,
                         "%s missing or not executable (run from the repo root, or set MAYFLY_TEST_FAKE_SMI)", fake_smi);
        if (have_lib && have_smi) {
                test_nvml_basic();
                test_nvml_boot_race();
                test_nvml_edges();
                test_legacy();
                test_fake_itself();
        }
        if (have_smi && access(fake_smi, X_OK) == 0)
                test_smi_fallback();

        unlink(state_path);
        rmdir(tmpdir);
        (void)argc;
        (void)argv;
        return t_summary();
}

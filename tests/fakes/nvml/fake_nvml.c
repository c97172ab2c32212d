/* SPDX-License-Identifier: Apache-2.0 */
/* fake_nvml.c — a fake libnvidia-ml.so.1 for tests (shared/platform/NVML.md §5).
 *
 * Build:  cc -std=gnu11 -shared -fPIC -O2 -Wall [-Wl,-soname,libnvidia-ml.so.1] -o libnvidia-ml.so.1 fake_nvml.c
 *         add -DFAKE_NVML_LEGACY for an old-driver variant without the _v2/_v3 symbols, nvmlInitWithFlags,
 *         nvmlDeviceGetMemoryInfo_v2, ...ClocksEventReasons and nvmlDeviceGetRemappedRows.
 *
 * Behaves like the real library where the header documents it:
 *   - every call but nvmlErrorString returns NVML_ERROR_UNINITIALIZED (1) before nvmlInit* or after the last
 *     nvmlShutdown; init is reference-counted; extra nvmlShutdown calls return SUCCESS once the library has been
 *     initialised at least once ("no error is reported if nvmlShutdown() is called more times than nvmlInit()"),
 *     UNINITIALIZED if it never was;
 *   - string getters return NVML_ERROR_INSUFFICIENT_SIZE (7) when length < strlen + 1, INVALID_ARGUMENT on NULL;
 *   - handles are pointers into a table owned by the fake; anything else is NVML_ERROR_INVALID_ARGUMENT (2);
 *   - nvmlDeviceGetMemoryInfo_v2 checks version == 0x02000028 (ARGUMENT_VERSION_MISMATCH, 25, otherwise;
 *     switchable); in nvmlMemory_t used = reserved + allocated, in nvmlMemory_v2_t used = allocated;
 *   - nvmlDeviceGetCount_v2 counts every GPU; the v1 nvmlDeviceGetCount / GetHandleByIndex skip the GPUs whose
 *     handle_errorN is NO_PERMISSION;
 *   - nvmlDeviceGetRetiredPages with *pageCount smaller than needed: INSUFFICIENT_SIZE and the needed count.
 *
 * State: the text file named by $FAKE_NVML_STATE, re-read on every call (so a test can change it while the agent
 * runs). No variable, or no file: the defaults. One key=value per line, no spaces around '='; blank lines and
 * lines starting with '#' are ignored; a later line wins; unparsable numbers keep the default. Errors are NVML
 * names without the NVML_ERROR_ prefix (DRIVER_NOT_LOADED, NO_PERMISSION, NOT_SUPPORTED, GPU_IS_LOST,
 * LIB_RM_VERSION_MISMATCH, ...) or numbers.
 *   count=N                   GPUs (default 1, at most 64)
 *   driver=535.104.05         nvmlSystemGetDriverVersion (default 535.104.05)
 *   nvml_version=12.535.104.05
 *   init_error=ERR            nvmlInit* fails with ERR as long as the line is there (boot race: DRIVER_NOT_LOADED)
 *   init_delay_ms=N           nvmlInit* sleeps N ms first
 *   call_delay_ms=N           every other call sleeps N ms first (a hang)
 *   count_error=ERR           nvmlDeviceGetCount* fails
 *   memv2_check=strict|lenient  wrong nvmlMemory_v2_t.version: ARGUMENT_VERSION_MISMATCH (strict, default) or
 *                             accepted
 *   xid=N  xid_gpu=I          nvmlEventSetWait* returns an XidCriticalError event (eventData N) on GPU I (default
 *                             0), on every call while the line is there and GPU I is registered; else it sleeps
 *                             timeoutms (at most 60 s) and returns TIMEOUT
 *   Per GPU, suffix the GPU index (0-based):
 *   nameI=Tesla V100-SXM2-16GB  uuidI=GPU-...   (default uuid GPU-f0a4e1c2-7b3d-4e5f-8a9b-0000000000II)
 *   mem_totalI=bytes (default 16944988160 = 16160 MiB)  mem_usedI=bytes allocated (0)  mem_reservedI=bytes (0)
 *   utilI=percent (0)  mem_utilI=percent (0)  tempI=C (35)  powerI=mW (40000)  clocksI=reason bits (0x1, GpuIdle)
 *   ecc_correctedI=N  ecc_uncorrectedI=N  retired_pagesI=N  remapped_corrI=N  remapped_uncI=N  (0)
 *   handle_errorI=ERR         nvmlDeviceGetHandleByIndex* fails (the v2 count still includes the GPU)
 *   util_errorI=ERR           nvmlDeviceGetUtilizationRates fails (NOT_SUPPORTED: a MIG-enabled GPU)
 *   mem_errorI=ERR            nvmlDeviceGetMemoryInfo* fail
 *   errorI=ERR                every call on the GPU's handle fails (GPU_IS_LOST mid-run)
 * The fake nvidia-smi next to this file reads the same file. Not thread-safe (tests are single-threaded).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef int nvmlReturn_t;
typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct nvmlEventSet_st *nvmlEventSet_t;

enum {
        NVML_SUCCESS = 0,
        NVML_ERROR_UNINITIALIZED = 1,
        NVML_ERROR_INVALID_ARGUMENT = 2,
        NVML_ERROR_NOT_SUPPORTED = 3,
        NVML_ERROR_NO_PERMISSION = 4,
        NVML_ERROR_INSUFFICIENT_SIZE = 7,
        NVML_ERROR_DRIVER_NOT_LOADED = 9,
        NVML_ERROR_TIMEOUT = 10,
        NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
        NVML_ERROR_UNKNOWN = 999,
};

typedef struct {
        unsigned int gpu, memory;
} nvmlUtilization_t;
typedef struct {
        unsigned long long total, free, used;
} nvmlMemory_t;
typedef struct {
        unsigned int version;
        unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;
typedef struct {
        char busIdLegacy[16];
        unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
        char busId[32];
} nvmlPciInfo_t;
typedef struct { /* the v1 layout of nvmlDeviceGetPciInfo */
        char busId[16];
        unsigned int domain, bus, device, pciDeviceId, pciSubSystemId, reserved0, reserved1, reserved2, reserved3;
} nvmlPciInfo_v1_t;
typedef struct {
        nvmlDevice_t device;
        unsigned long long eventType, eventData;
        unsigned int gpuInstanceId, computeInstanceId;
} nvmlEventData_t;
typedef struct { /* the v1 layout of nvmlEventSetWait */
        nvmlDevice_t device;
        unsigned long long eventType, eventData;
} nvmlEventData_v1_t;

#define NVML_MEMORY_V2_VERSION 0x02000028u
#define FAKE_MAX 64
#define FAKE_STATE_CAP 65536
#define XID_CRITICAL 0x8ull

struct fdev {
        char name[128], uuid[128];
        unsigned long long total, used, reserved, clocks, ecc_corr, ecc_unc;
        unsigned util, mem_util, temp, power, retired, remap_corr, remap_unc;
        int handle_err, util_err, mem_err, err;
};

static struct {
        unsigned count;
        char driver[128], nvml_version[128];
        int init_err, count_err, memv2_lenient;
        unsigned init_delay_ms, call_delay_ms;
        long xid;
        unsigned xid_gpu;
        struct fdev d[FAKE_MAX];
} st;

static int refs, ever_initialized;
static char handles[FAKE_MAX];                   /* nvmlDevice_t i == (nvmlDevice_t)&handles[i] */
static unsigned long long registered[FAKE_MAX];  /* event masks, kept across calls */
static char event_set_token;

static const struct { int code; const char *name, *text; } errs[] = {
        { 0, "SUCCESS", "Success" },
        { 1, "UNINITIALIZED", "Uninitialized" },
        { 2, "INVALID_ARGUMENT", "Invalid Argument" },
        { 3, "NOT_SUPPORTED", "Not Supported" },
        { 4, "NO_PERMISSION", "Insufficient Permissions" },
        { 5, "ALREADY_INITIALIZED", "Already Initialized" },
        { 6, "NOT_FOUND", "Not Found" },
        { 7, "INSUFFICIENT_SIZE", "Insufficient Size" },
        { 8, "INSUFFICIENT_POWER", "Insufficient External Power" },
        { 9, "DRIVER_NOT_LOADED", "Driver Not Loaded" },
        { 10, "TIMEOUT", "Timeout" },
        { 11, "IRQ_ISSUE", "Interrupt Request Issue" },
        { 12, "LIBRARY_NOT_FOUND", "NVML Shared Library Not Found" },
        { 13, "FUNCTION_NOT_FOUND", "Function Not Found" },
        { 14, "CORRUPTED_INFOROM", "Corrupted infoROM" },
        { 15, "GPU_IS_LOST", "GPU is lost" },
        { 16, "RESET_REQUIRED", "GPU requires reset" },
        { 17, "OPERATING_SYSTEM", "GPU access blocked by the operating system" },
        { 18, "LIB_RM_VERSION_MISMATCH", "Driver/library version mismatch" },
        { 19, "IN_USE", "In use by another client" },
        { 20, "MEMORY", "Insufficient Memory" },
        { 21, "NO_DATA", "No data" },
        { 22, "VGPU_ECC_NOT_SUPPORTED", "vGPU ECC not supported" },
        { 23, "INSUFFICIENT_RESOURCES", "Insufficient Resources" },
        { 24, "FREQ_NOT_SUPPORTED", "Frequency not supported" },
        { 25, "ARGUMENT_VERSION_MISMATCH", "Argument version mismatch" },
        { 26, "DEPRECATED", "Deprecated" },
        { 27, "NOT_READY", "Not ready" },
        { 28, "GPU_NOT_FOUND", "GPU not found" },
        { 29, "INVALID_STATE", "Invalid state" },
        { 30, "RESET_TYPE_NOT_SUPPORTED", "Reset type not supported" },
        { 999, "UNKNOWN", "Unknown Error" },
};

/* ---- state ---- */

static int parse_ull(const char *s, unsigned long long *ret) {
        char *end;
        if (!*s || *s == '-')
                return -1;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 0);
        if (errno || *end)
                return -1;
        *ret = v;
        return 0;
}

static void set_uns(const char *v, unsigned *dst) {
        unsigned long long x;
        if (parse_ull(v, &x) == 0 && x <= 0xffffffffull)
                *dst = (unsigned)x;
}

static void set_ull(const char *v, unsigned long long *dst) {
        unsigned long long x;
        if (parse_ull(v, &x) == 0)
                *dst = x;
}

static void set_err(const char *v, int *dst) {
        unsigned long long x;
        const char *n = strncmp(v, "NVML_ERROR_", 11) == 0 ? v + 11 : v;
        for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++)
                if (strcmp(n, errs[i].name) == 0) {
                        *dst = errs[i].code;
                        return;
                }
        if (parse_ull(v, &x) == 0 && x < 100000)
                *dst = (int)x;
}

static void set_str(const char *v, char *dst, size_t n) { snprintf(dst, n, "%s", v); }

static void defaults(void) {
        memset(&st, 0, sizeof st);
        st.count = 1;
        set_str("535.104.05", st.driver, sizeof st.driver);
        set_str("12.535.104.05", st.nvml_version, sizeof st.nvml_version);
        st.xid = -1;
        for (unsigned i = 0; i < FAKE_MAX; i++) {
                struct fdev *d = &st.d[i];
                set_str("Tesla V100-SXM2-16GB", d->name, sizeof d->name);
                snprintf(d->uuid, sizeof d->uuid, "GPU-f0a4e1c2-7b3d-4e5f-8a9b-%012x", i);
                d->total = 16944988160ull;
                d->temp = 35;
                d->power = 40000;
                d->clocks = 0x1;
        }
}

static void set_dev(struct fdev *d, const char *k, const char *v) {
        if (!strcmp(k, "name"))
                set_str(v, d->name, sizeof d->name);
        else if (!strcmp(k, "uuid"))
                set_str(v, d->uuid, sizeof d->uuid);
        else if (!strcmp(k, "mem_total"))
                set_ull(v, &d->total);
        else if (!strcmp(k, "mem_used"))
                set_ull(v, &d->used);
        else if (!strcmp(k, "mem_reserved"))
                set_ull(v, &d->reserved);
        else if (!strcmp(k, "util"))
                set_uns(v, &d->util);
        else if (!strcmp(k, "mem_util"))
                set_uns(v, &d->mem_util);
        else if (!strcmp(k, "temp"))
                set_uns(v, &d->temp);
        else if (!strcmp(k, "power"))
                set_uns(v, &d->power);
        else if (!strcmp(k, "clocks"))
                set_ull(v, &d->clocks);
        else if (!strcmp(k, "ecc_corrected"))
                set_ull(v, &d->ecc_corr);
        else if (!strcmp(k, "ecc_uncorrected"))
                set_ull(v, &d->ecc_unc);
        else if (!strcmp(k, "retired_pages"))
                set_uns(v, &d->retired);
        else if (!strcmp(k, "remapped_corr"))
                set_uns(v, &d->remap_corr);
        else if (!strcmp(k, "remapped_unc"))
                set_uns(v, &d->remap_unc);
        else if (!strcmp(k, "handle_error"))
                set_err(v, &d->handle_err);
        else if (!strcmp(k, "util_error"))
                set_err(v, &d->util_err);
        else if (!strcmp(k, "mem_error"))
                set_err(v, &d->mem_err);
        else if (!strcmp(k, "error"))
                set_err(v, &d->err);
}

static void set_key(char *k, const char *v) {
        size_t n = strlen(k), j = n;
        while (j > 0 && k[j - 1] >= '0' && k[j - 1] <= '9')
                j--;
        if (j < n && j > 0) { /* per-GPU key */
                unsigned long long idx;
                if (n - j > 3 || parse_ull(k + j, &idx) < 0 || idx >= FAKE_MAX)
                        return;
                k[j] = 0;
                set_dev(&st.d[idx], k, v);
                return;
        }
        if (!strcmp(k, "count")) {
                set_uns(v, &st.count);
                if (st.count > FAKE_MAX)
                        st.count = FAKE_MAX;
        } else if (!strcmp(k, "driver"))
                set_str(v, st.driver, sizeof st.driver);
        else if (!strcmp(k, "nvml_version"))
                set_str(v, st.nvml_version, sizeof st.nvml_version);
        else if (!strcmp(k, "init_error"))
                set_err(v, &st.init_err);
        else if (!strcmp(k, "count_error"))
                set_err(v, &st.count_err);
        else if (!strcmp(k, "init_delay_ms"))
                set_uns(v, &st.init_delay_ms);
        else if (!strcmp(k, "call_delay_ms"))
                set_uns(v, &st.call_delay_ms);
        else if (!strcmp(k, "memv2_check"))
                st.memv2_lenient = !strcmp(v, "lenient");
        else if (!strcmp(k, "xid")) {
                unsigned long long x;
                if (parse_ull(v, &x) == 0 && x < 0x7fffffff)
                        st.xid = (long)x;
        } else if (!strcmp(k, "xid_gpu"))
                set_uns(v, &st.xid_gpu);
}

static void load(void) {
        static char text[FAKE_STATE_CAP + 1];
        defaults();
        const char *path = getenv("FAKE_NVML_STATE");
        if (!path || !*path)
                return;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return;
        size_t len = 0;
        for (;;) {
                ssize_t n = read(fd, text + len, FAKE_STATE_CAP - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                len += (size_t)n;
                if (len == FAKE_STATE_CAP)
                        break;
        }
        close(fd);
        text[len] = 0;
        for (char *line = text; line && *line;) {
                char *nl = strchr(line, '\n');
                if (nl)
                        *nl = 0;
                size_t l = strlen(line);
                if (l && line[l - 1] == '\r')
                        line[l - 1] = 0;
                char *eq = strchr(line, '=');
                if (line[0] != '#' && eq) {
                        *eq = 0;
                        set_key(line, eq + 1);
                }
                line = nl ? nl + 1 : NULL;
        }
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* Every call but nvmlErrorString and nvmlInit* starts here. */
static nvmlReturn_t enter(void) {
        load();
        if (st.call_delay_ms)
                sleep_ms(st.call_delay_ms);
        return refs > 0 ? NVML_SUCCESS : NVML_ERROR_UNINITIALIZED;
}

static int handle_index(nvmlDevice_t h) {
        const char *p = (const char *)h;
        if (!p || p < handles || p >= handles + FAKE_MAX)
                return -1;
        int i = (int)(p - handles);
        return (unsigned)i < st.count ? i : -1;
}

static nvmlReturn_t dev_enter(nvmlDevice_t h, struct fdev **ret) {
        nvmlReturn_t r = enter();
        if (r)
                return r;
        int i = handle_index(h);
        if (i < 0)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (st.d[i].err)
                return st.d[i].err;
        *ret = &st.d[i];
        return NVML_SUCCESS;
}

static nvmlReturn_t put_str(const char *s, char *buf, unsigned int length) {
        if (!buf)
                return NVML_ERROR_INVALID_ARGUMENT;
        size_t l = strlen(s);
        if ((size_t)length < l + 1)
                return NVML_ERROR_INSUFFICIENT_SIZE;
        memcpy(buf, s, l + 1);
        return NVML_SUCCESS;
}

/* ---- init, errors, system ---- */

static nvmlReturn_t do_init(void) {
        load();
        if (st.init_delay_ms)
                sleep_ms(st.init_delay_ms);
        if (st.init_err)
                return st.init_err;
        refs++;
        ever_initialized = 1;
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlInit(void) { return do_init(); }
#ifndef FAKE_NVML_LEGACY
nvmlReturn_t nvmlInit_v2(void) { return do_init(); }
nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
        (void)flags; /* NVML_INIT_FLAG_NO_GPUS: the fake never fails for zero GPUs */
        return do_init();
}
#endif

nvmlReturn_t nvmlShutdown(void) {
        if (refs == 0)
                return ever_initialized ? NVML_SUCCESS : NVML_ERROR_UNINITIALIZED;
        refs--;
        if (refs == 0)
                memset(registered, 0, sizeof registered);
        return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t result) {
        for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++)
                if (errs[i].code == result)
                        return errs[i].text;
        return "Unknown Error";
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
        nvmlReturn_t r = enter();
        return r ? r : put_str(st.driver, version, length);
}

nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length) {
        nvmlReturn_t r = enter();
        return r ? r : put_str(st.nvml_version, version, length);
}

/* ---- enumeration ---- */

static int v1_visible(unsigned i) { return st.d[i].handle_err != NVML_ERROR_NO_PERMISSION; }

static nvmlReturn_t get_count(unsigned int *c, int v1) {
        nvmlReturn_t r = enter();
        if (r)
                return r;
        if (!c)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (st.count_err)
                return st.count_err;
        unsigned n = 0;
        for (unsigned i = 0; i < st.count; i++)
                n += !v1 || v1_visible(i);
        *c = n;
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount(unsigned int *deviceCount) { return get_count(deviceCount, 1); }
#ifndef FAKE_NVML_LEGACY
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *deviceCount) { return get_count(deviceCount, 0); }
#endif

static nvmlReturn_t get_handle(unsigned int index, nvmlDevice_t *device, int v1) {
        nvmlReturn_t r = enter();
        if (r)
                return r;
        if (!device)
                return NVML_ERROR_INVALID_ARGUMENT;
        unsigned i = index;
        if (v1) { /* the v1 index runs over the GPUs we may open */
                unsigned seen = 0;
                for (i = 0; i < st.count; i++)
                        if (v1_visible(i) && seen++ == index)
                                break;
        }
        if (i >= st.count)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (st.d[i].handle_err)
                return st.d[i].handle_err;
        *device = (nvmlDevice_t)&handles[i];
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device) {
        return get_handle(index, device, 1);
}
#ifndef FAKE_NVML_LEGACY
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
        return get_handle(index, device, 0);
}
#endif

/* ---- device queries ---- */

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
        struct fdev *d;
        nvmlReturn_t r = dev_enter(device, &d);
        return r ? r : put_str(d->name, name, length);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
        struct fdev *d;
        nvmlReturn_t r = dev_enter(device, &d);
        return r ? r : put_str(d->uuid, uuid, length);
}

static void fill_pci(int i, nvmlPciInfo_t *p) {
        memset(p, 0, sizeof *p);
        p->domain = 0;
        p->bus = 0x10u + (unsigned)i;
        p->pciDeviceId = 0x1db110deu; /* V100-SXM2-16GB */
        p->pciSubSystemId = 0x121210deu;
        snprintf(p->busIdLegacy, sizeof p->busIdLegacy, "0000:%02X:00.0", p->bus);
        snprintf(p->busId, sizeof p->busId, "00000000:%02X:00.0", p->bus);
}

static nvmlReturn_t pci_info(nvmlDevice_t device, nvmlPciInfo_t *pci) {
        struct fdev *d;
        nvmlReturn_t r = dev_enter(device, &d);
        if (r)
                return r;
        if (!pci)
                return NVML_ERROR_INVALID_ARGUMENT;
        fill_pci(handle_index(device), pci);
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPciInfo(nvmlDevice_t device, nvmlPciInfo_v1_t *pci) {
        nvmlPciInfo_t p;
        nvmlReturn_t r = pci_info(device, pci ? &p : NULL);
        if (r)
                return r;
        memset(pci, 0, sizeof *pci);
        snprintf(pci->busId, sizeof pci->busId, "%s", p.busIdLegacy);
        pci->domain = p.domain;
        pci->bus = p.bus;
        pci->device = p.device;
        pci->pciDeviceId = p.pciDeviceId;
        pci->pciSubSystemId = p.pciSubSystemId;
        return NVML_SUCCESS;
}
#ifndef FAKE_NVML_LEGACY
nvmlReturn_t nvmlDeviceGetPciInfo_v2(nvmlDevice_t device, nvmlPciInfo_t *pci) { return pci_info(device, pci); }
nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci) { return pci_info(device, pci); }
#endif

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
        struct fdev *d;
        nvmlReturn_t r = dev_enter(device, &d);
        if (r)
                return r;
        if (!memory)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (d->mem_err)
                return d->mem_err;
        memory->total = d->total;
        memory->used = d->used + d->reserved;
        memory->free = memory->used < d->total ? d->total - memory->used : 0;
        return NVML_SUCCESS;
}

#ifndef FAKE_NVML_LEGACY
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
        struct fdev *d;
        nvmlReturn_t r = dev_enter(device, &d);
        if (r)
                return r;
        if (!memory)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (memory->version != NVML_MEMORY_V2_VERSION && !st.memv2_lenient)
                return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
        if (d->mem_err)
                return d->mem_err;
        memory->total = d->total;
        memory->reserved = d->reserved;
        memory->used = d->used;
        memory->free = d->used + d->reserved < d->total ? d->total - d->used - d->reserved : 0;
        return NVML_SUCCESS;
}
#endif

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization) {
        struct fdev *d;
        nvmlReturn_t r = dev_enter(device, &d);
        if (r)
                return r;
        if (!utilization)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (d->util_err)
                return d->util_err;
        utilization->gpu = d->util;
        utilization->memory = d->mem_util;
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensorType, unsigned int *temp) {
        struct fdev *d;
        nvmlReturn_t r = dev_enter(device, &d);
        if (r)
                return r;
        if (!temp || sensorType != 0) /* NVML_TEMPERATURE_GPU */
                return NVML_ERROR_INVALID_ARGUMENT;
        *temp = d->temp;
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power) {
        struct fdev *d;
        nvmlReturn_t r = dev_enter(device, &d);
        if (r)
                return r;
        if (!power)
                return NVML_ERROR_INVALID_ARGUMENT;
        *power = d->power;
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, int errorType, int counterType,
                                         unsigned long long *eccCounts) {
        struct fdev *d;
        nvmlReturn_t r = dev_enter(device, &d);
        if (r)
                return r;
        if (!eccCounts || (errorType != 0 && errorType != 1) || (counterType != 0 && counterType != 1))
                return NVML_ERROR_INVALID_ARGUMENT;
        *eccCounts = errorType == 0 ? d->ecc_corr : d->ecc_unc;
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetRetiredPages(nvmlDevice_t device, int cause, unsigned int *pageCount,
                                       unsigned long long *addresses) {
        struct fdev *d;
        nvmlReturn_t r = dev_enter(device, &d);
        if (r)
                return r;
        if (!pageCount || (cause != 0 && cause != 1))
                return NVML_ERROR_INVALID_ARGUMENT;
        if (*pageCount < d->retired) {
                *pageCount = d->retired;
                return NVML_ERROR_INSUFFICIENT_SIZE;
        }
        if (d->retired && !addresses)
                return NVML_ERROR_INVALID_ARGUMENT;
        for (unsigned k = 0; k < d->retired; k++)
                addresses[k] = 0x100000ull * (k + 1);
        *pageCount = d->retired;
        return NVML_SUCCESS;
}

#ifndef FAKE_NVML_LEGACY
nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t device, unsigned int *corrRows, unsigned int *uncRows,
                                       unsigned int *isPending, unsigned int *failureOccurred) {
        struct fdev *d;
        nvmlReturn_t r = dev_enter(device, &d);
        if (r)
                return r;
        if (!corrRows || !uncRows || !isPending || !failureOccurred)
                return NVML_ERROR_INVALID_ARGUMENT;
        *corrRows = d->remap_corr;
        *uncRows = d->remap_unc;
        *isPending = 0;
        *failureOccurred = 0;
        return NVML_SUCCESS;
}
#endif

static nvmlReturn_t clocks(nvmlDevice_t device, unsigned long long *reasons) {
        struct fdev *d;
        nvmlReturn_t r = dev_enter(device, &d);
        if (r)
                return r;
        if (!reasons)
                return NVML_ERROR_INVALID_ARGUMENT;
        *reasons = d->clocks;
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t device, unsigned long long *reasons) {
        return clocks(device, reasons);
}
#ifndef FAKE_NVML_LEGACY
nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t device, unsigned long long *reasons) {
        return clocks(device, reasons);
}
#endif

nvmlReturn_t nvmlDeviceGetPersistenceMode(nvmlDevice_t device, int *mode) {
        struct fdev *d;
        nvmlReturn_t r = dev_enter(device, &d);
        if (r)
                return r;
        if (!mode)
                return NVML_ERROR_INVALID_ARGUMENT;
        *mode = 1; /* NVML_FEATURE_ENABLED */
        return NVML_SUCCESS;
}

/* ---- events ---- */

nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set) {
        nvmlReturn_t r = enter();
        if (r)
                return r;
        if (!set)
                return NVML_ERROR_INVALID_ARGUMENT;
        *set = (nvmlEventSet_t)&event_set_token;
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
        nvmlReturn_t r = enter();
        if (r)
                return r;
        return set == (nvmlEventSet_t)&event_set_token ? NVML_SUCCESS : NVML_ERROR_INVALID_ARGUMENT;
}

nvmlReturn_t nvmlDeviceGetSupportedEventTypes(nvmlDevice_t device, unsigned long long *eventTypes) {
        struct fdev *d;
        nvmlReturn_t r = dev_enter(device, &d);
        if (r)
                return r;
        if (!eventTypes)
                return NVML_ERROR_INVALID_ARGUMENT;
        *eventTypes = 0x1ull | 0x2ull | XID_CRITICAL; /* single-bit ECC, double-bit ECC, XID */
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long eventTypes, nvmlEventSet_t set) {
        struct fdev *d;
        nvmlReturn_t r = dev_enter(device, &d);
        if (r)
                return r;
        if (set != (nvmlEventSet_t)&event_set_token)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (eventTypes & ~(0x1ull | 0x2ull | XID_CRITICAL))
                return NVML_ERROR_NOT_SUPPORTED;
        registered[handle_index(device)] |= eventTypes;
        return NVML_SUCCESS;
}

static nvmlReturn_t wait_event(nvmlEventSet_t set, nvmlDevice_t *dev, unsigned long long *type,
                               unsigned long long *data, unsigned int timeoutms) {
        nvmlReturn_t r = enter();
        if (r)
                return r;
        if (set != (nvmlEventSet_t)&event_set_token)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (st.xid >= 0 && st.xid_gpu < st.count && (registered[st.xid_gpu] & XID_CRITICAL)) {
                *dev = (nvmlDevice_t)&handles[st.xid_gpu];
                *type = XID_CRITICAL;
                *data = (unsigned long long)st.xid;
                return NVML_SUCCESS;
        }
        sleep_ms(timeoutms < 60000 ? timeoutms : 60000);
        return NVML_ERROR_TIMEOUT;
}

nvmlReturn_t nvmlEventSetWait(nvmlEventSet_t set, nvmlEventData_v1_t *data, unsigned int timeoutms) {
        if (!data)
                return enter() ? NVML_ERROR_UNINITIALIZED : NVML_ERROR_INVALID_ARGUMENT;
        return wait_event(set, &data->device, &data->eventType, &data->eventData, timeoutms);
}
#ifndef FAKE_NVML_LEGACY
nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms) {
        if (!data)
                return enter() ? NVML_ERROR_UNINITIALIZED : NVML_ERROR_INVALID_ARGUMENT;
        nvmlReturn_t r = wait_event(set, &data->device, &data->eventType, &data->eventData, timeoutms);
        if (r == NVML_SUCCESS)
                data->gpuInstanceId = data->computeInstanceId = 0xffffffffu;
        return r;
}
#endif

# mayfly — GNU make, flags from pkg-config.
VERSION    := 0.1.0
PREFIX     ?= /usr
BINDIR     ?= $(PREFIX)/bin
DESTDIR    ?=
SHARED     ?= ../shared
CC         ?= cc
PKGS       := libcurl libcjson expat libcrypto libsystemd libarchive zlib
CFLAGS     ?= -O2 -g -D_FORTIFY_SOURCE=2 -fstack-protector-strong
LDFLAGS    ?= -Wl,-z,relro,-z,now
WARN       := -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Wno-unused-parameter \
              -Wno-format-truncation
XCFLAGS    := -std=gnu11 -D_GNU_SOURCE -Iinclude -DMAYFLY_VERSION='"$(VERSION)"' $(WARN) \
              $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LIBS       := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -ldl -lm
BUILD      ?= build

# Three floors above the ground (agent/*.c: util, log, crypto): cmd/ (main, the commands, delivery) above run/
# (the lifecycle and what it drives) above aws/ (the wire). A floor includes only the floors below it.
FLOORS     := aws run cmd
SRCS       := $(wildcard agent/*.c $(FLOORS:%=agent/%/*.c))
HDRS       := $(wildcard include/*.h $(FLOORS:%=include/%/*.h))
OBJS       := $(SRCS:agent/%.c=$(BUILD)/agent/%.o) $(BUILD)/agent/cmd/units_blob.o
LIBOBJS    := $(filter-out $(BUILD)/agent/cmd/main.o,$(OBJS))
UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all test unit demo bench install clean deps fuzz fuzz-build test-asan reliability

all: $(BUILD)/mayfly

$(BUILD)/agent/%.o: agent/%.c $(HDRS) | deps
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(XCFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/agent/cmd/units_blob.o: agent/cmd/units_blob.S $(wildcard units/*)
	@mkdir -p $(dir $@)
	@echo "  AS      $<"
	@$(CC) -c -Wa,-I,$(CURDIR) -o $@ $<

$(BUILD)/mayfly: $(OBJS)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LIBS)
	@ln -sf $(BUILD)/mayfly mayfly 2>/dev/null || true

$(BUILD)/tests/%: tests/unit/%.c $(LIBOBJS) tests/unit/test.h
	@mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	@$(CC) $(XCFLAGS) $(CFLAGS) -o $@ $< $(LIBOBJS) $(LDFLAGS) $(LIBS)

# Installs missing Debian packages (as root), then checks pkg-config finds every library.
deps:
	@scripts=tests/deps.sh; sh $$scripts build

# The fake NVML library the GPU tests load instead of the driver's.
FAKE_NVML  := $(BUILD)/fakes/nvml/libnvidia-ml.so.1 $(BUILD)/fakes/nvml/legacy/libnvidia-ml.so.1
$(BUILD)/fakes/nvml/libnvidia-ml.so.1: tests/fakes/nvml/fake_nvml.c
	@mkdir -p $(dir $@)
	@echo "  CCSO    $@"
	@$(CC) -std=gnu11 -shared -fPIC -O2 -Wall -Wl,-soname,libnvidia-ml.so.1 -o $@ $<
$(BUILD)/fakes/nvml/legacy/libnvidia-ml.so.1: tests/fakes/nvml/fake_nvml.c
	@mkdir -p $(dir $@)
	@echo "  CCSO    $@"
	@$(CC) -std=gnu11 -shared -fPIC -O2 -Wall -DFAKE_NVML_LEGACY -Wl,-soname,libnvidia-ml.so.1 -o $@ $<

unit: $(UNIT_BINS) $(FAKE_NVML)

test: all unit
	@sh tests/deps.sh test
	python3 tests/run.py --build $(BUILD) --shared $(SHARED)

demo: all
	@sh tests/deps.sh test
	python3 tests/demo.py --build $(BUILD)

# Downloads (bench.py), uploads, small files, TLS static vs dynamic and checkpoint sync (bench_up.py), the agent's
# own overheads (bench_run.py); about 15 minutes on 2 CPUs. Not part of `make test`.
bench: all static
	@sh tests/deps.sh bench
	python3 bench/bench.py --build $(BUILD)
	python3 bench/bench_up.py --build $(BUILD)
	python3 bench/bench_run.py --build $(BUILD)

# libFuzzer harnesses (clang), every agent module built with ASan+UBSan+fuzzer instrumentation.
FUZZ_SECONDS ?= 60
FUZZ_DIR   := $(BUILD)/fuzz
FUZZ_CFLAGS := -std=gnu11 -D_GNU_SOURCE -Iinclude -DMAYFLY_VERSION='"$(VERSION)"' -g -O1 -fno-omit-frame-pointer \
              -Wall -Wextra -Wno-unused-parameter $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_OBJS  := $(filter-out $(FUZZ_DIR)/agent/cmd/main.o,$(SRCS:agent/%.c=$(FUZZ_DIR)/agent/%.o)) $(BUILD)/agent/cmd/units_blob.o
FUZZ_BINS  := $(patsubst tests/fuzz/fuzz_%.c,$(FUZZ_DIR)/fuzz_%,$(wildcard tests/fuzz/fuzz_*.c))

$(FUZZ_DIR)/agent/%.o: agent/%.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CLANG   $<"
	@clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -c -o $@ $<

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJS)
	@echo "  FUZZER  $@"
	@clang $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< $(FUZZ_OBJS) $(LIBS)

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	@sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_DIR)

# The whole suite against a build with AddressSanitizer + UndefinedBehaviorSanitizer (leaks fail it too).
test-asan:
	@sh tests/deps.sh test
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
	        LDFLAGS="-fsanitize=address,undefined" all unit
	MAYFLY_SANITIZED=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	        python3 tests/run.py --build build-asan --shared $(SHARED)

# Each injected fault x the happy path of `mayfly run`; writes docs/reliability.md.
reliability: all
	@sh tests/deps.sh test
	python3 tests/reliability.py --build $(BUILD)

install: all
	install -D -m 0755 $(BUILD)/mayfly $(DESTDIR)$(BINDIR)/mayfly

clean:
	rm -rf $(BUILD) mayfly
include packaging/static.mk
include packaging/packaging.mk
include tests/vm/vm.mk

# SPDX-License-Identifier: Apache-2.0
# mayfly — GNU make, flags from pkg-config.
VERSION    := 0.1.0
PREFIX     ?= /usr
BINDIR     ?= $(PREFIX)/bin
DESTDIR    ?=
CC         ?= cc
PKGS       := libcurl libcjson expat libcrypto libsystemd libarchive inih zlib yaml-0.1
CFLAGS     ?= -O2 -g -D_FORTIFY_SOURCE=2 -fstack-protector-strong
LDFLAGS    ?= -Wl,-z,relro,-z,now
WARN       := -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Wno-unused-parameter
# The pkg-config flags are looked up when a recipe first needs them, once, and not when make reads this file: on a
# fresh machine the -dev packages do not exist yet at that point (`deps`, which every object waits for, installs
# them), and flags read then would be empty and the first link would fail.
PKG_CFLAGS = $(eval PKG_CFLAGS := $$(shell pkg-config --cflags $$(PKGS) 2>/dev/null))$(PKG_CFLAGS)
PKG_LIBS   = $(eval PKG_LIBS := $$(shell pkg-config --libs $$(PKGS) 2>/dev/null))$(PKG_LIBS)
# MAYFLY_HAVE_INIH: ~/.aws/config and ~/.aws/credentials are read (libinih); the static build goes without.
# MAYFLY_HAVE_YAML: YAML job specs (libyaml); the static build goes without (the instance always gets JSON).
XCFLAGS    = -std=gnu11 -D_GNU_SOURCE -Iinclude -DMAYFLY_VERSION='"$(VERSION)"' -DMAYFLY_HAVE_INIH -DMAYFLY_HAVE_YAML $(WARN) \
             $(PKG_CFLAGS)
LIBS       = $(PKG_LIBS) -lpthread -ldl -lm
BUILD      ?= build

# Three floors above the ground (agent/*.c: util, log, crypto): cmd/ (main, the commands, delivery) above run/
# (the lifecycle and what it drives) above aws/ (the wire). A floor includes only the floors below it.
# run/ is in rooms by concern (base, proc, watch, fleet, view, ship, drive; tests/blackbox/test_layout.py).
FLOORS     := aws run cmd
SRCS       := $(wildcard agent/*.c $(FLOORS:%=agent/%/*.c) agent/run/*/*.c)
HDRS       := $(wildcard include/*.h $(FLOORS:%=include/%/*.h) include/run/*/*.h)
# Files built into the binary (.incbin): the systemd units and the user-data templates.
BLOBS      := $(wildcard agent/cmd/*_blob.S)
BLOB_DATA  := $(wildcard units/*.service units/*.timer userdata/install.sh userdata/cloud-config.yaml)
OBJS       := $(SRCS:agent/%.c=$(BUILD)/agent/%.o) $(BLOBS:agent/%.S=$(BUILD)/agent/%.o)
LIBOBJS    := $(filter-out $(BUILD)/agent/cmd/main.o,$(OBJS))
UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all test unit demo bench install uninstall clean deps fuzz fuzz-long fuzz-build test-asan test-tsan reliability

all: $(BUILD)/mayfly

$(BUILD)/agent/%.o: agent/%.c $(HDRS) | deps
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(XCFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/agent/cmd/%_blob.o: agent/cmd/%_blob.S $(BLOB_DATA)
	@mkdir -p $(dir $@)
	@echo "  AS      $<"
	@$(CC) -c -Wa,-I,$(CURDIR) -o $@ $<

$(BUILD)/mayfly: $(OBJS)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LIBS)
	@ln -sf $(BUILD)/mayfly mayfly 2>/dev/null || true

# (test names are messages, which may be cut: the agent's own code has no -Wno-format-truncation)
$(BUILD)/tests/%: tests/unit/%.c $(LIBOBJS) tests/unit/test.h
	@mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	@$(CC) $(XCFLAGS) -Wno-format-truncation $(CFLAGS) -o $@ $< $(LIBOBJS) $(LDFLAGS) $(LIBS)

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

# The black-box tests' driver of the Auto Scaling calls (aws/autoscaling.h), one call per command line.
$(BUILD)/tests/asgctl: tests/blackbox/asgctl.c $(LIBOBJS)
	@mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	@$(CC) $(XCFLAGS) $(CFLAGS) -o $@ $< $(LIBOBJS) $(LDFLAGS) $(LIBS)

unit: $(UNIT_BINS) $(FAKE_NVML) $(BUILD)/tests/asgctl

test: all unit
	@sh tests/deps.sh test
	python3 tests/run.py --build $(BUILD)

demo: all
	@sh tests/deps.sh demo
	python3 tests/demo.py --build $(BUILD)

# Downloads (bench.py), uploads, small files, TLS static vs dynamic and checkpoint sync (bench_up.py), the agent's
# own overheads (bench_run.py), a sweep's makespan and a replacement's restore (bench_fleet.py), staging inputs
# (bench_stage.py); about 20 minutes
# on 2 CPUs. Not part of `make test`.
bench: all static
	@sh tests/deps.sh bench
	python3 bench/bench.py --build $(BUILD)
	python3 bench/bench_up.py --build $(BUILD)
	python3 bench/bench_run.py --build $(BUILD)
	python3 bench/bench_fleet.py --build $(BUILD)
	python3 bench/bench_stage.py --build $(BUILD)

# libFuzzer harnesses (clang), every agent module built with ASan+UBSan+fuzzer instrumentation.
FUZZ_SECONDS ?= 60
FUZZ_DIR   := $(BUILD)/fuzz
FUZZ_CFLAGS = -std=gnu11 -D_GNU_SOURCE -Iinclude -DMAYFLY_VERSION='"$(VERSION)"' -DMAYFLY_HAVE_INIH -DMAYFLY_HAVE_YAML -g -O1 \
              -fno-omit-frame-pointer -Wall -Wextra -Wno-unused-parameter $(PKG_CFLAGS)
FUZZ_OBJS  := $(filter-out $(FUZZ_DIR)/agent/cmd/main.o,$(SRCS:agent/%.c=$(FUZZ_DIR)/agent/%.o)) \
              $(BLOBS:agent/%.S=$(BUILD)/agent/%.o)
FUZZ_BINS  := $(patsubst tests/fuzz/fuzz_%.c,$(FUZZ_DIR)/fuzz_%,$(wildcard tests/fuzz/fuzz_*.c))

$(FUZZ_DIR)/agent/%.o: agent/%.c $(HDRS) | deps
	@mkdir -p $(dir $@)
	@echo "  CLANG   $<"
	@clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -c -o $@ $<

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJS)
	@echo "  FUZZER  $@"
	@clang $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $< $(FUZZ_OBJS) $(LIBS)

fuzz-build: $(FUZZ_BINS)
# the instrumented objects are kept (make would delete them as intermediates and build them all again next time)
.SECONDARY: $(FUZZ_OBJS)

fuzz: fuzz-build
	@sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_DIR)

# Every harness for 10 minutes (about 1.5 hours; outside CI, which runs the 5 s smoke run): the table of executions,
# coverage and crashes.
fuzz-long: fuzz-build
	@sh tests/fuzz/run.sh 600 $(FUZZ_DIR)

# The whole suite against a build with AddressSanitizer + UndefinedBehaviorSanitizer (leaks fail it too).
test-asan:
	@sh tests/deps.sh test
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
	        LDFLAGS="-fsanitize=address,undefined" all unit
	MAYFLY_SANITIZED=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	        python3 tests/run.py --build build-asan

# The black-box suite against a ThreadSanitizer build (the agent's threads: watcher, shipper, keeper, workers). Not
# in CI (about 10 minutes); docs/testing.md says what it found. A race ends the agent with exit 66 and its report
# on stderr (halt_on_error), which fails the test that ran it.
test-tsan:
	@sh tests/deps.sh test
	$(MAKE) BUILD=build-tsan CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=thread" LDFLAGS="-fsanitize=thread" \
	        all unit
	MAYFLY_SANITIZED=1 TSAN_OPTIONS=halt_on_error=1:exitcode=66:second_deadlock_stack=1 \
	        python3 tests/run.py --build build-tsan

# Each injected fault x the happy path of `mayfly run`, then a sweep under seeded chaos (seeds 1-5), side by side (about 4
# minutes); writes docs/reliability.md. CI runs it.
reliability: all
	@sh tests/deps.sh test
	python3 tests/reliability.py --build $(BUILD)

# What the packages install, under PREFIX: the binary, the units (ExecStart= pointing at BINDIR) in
# $(PREFIX)/lib/systemd/system (systemd looks there for /usr and /usr/local alike), the man pages, the docs.
UNITDIR    ?= $(PREFIX)/lib/systemd/system
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/mayfly
SYSCONFDIR ?= /etc
UNIT_FILES := mayfly.service mayfly-failsafe.service mayfly-scratch.service mayfly-backstop.service mayfly-backstop.timer
MAN_PAGES  := man1/mayfly.1 man5/mayfly-job.5
DOC_FILES  := README.md LICENSE docs/job-spec.md docs/job-schema.json docs/iam.md

install: all
	install -D -m 0755 $(BUILD)/mayfly $(DESTDIR)$(BINDIR)/mayfly
	install -d -m 0755 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(SYSCONFDIR)/mayfly
	for u in $(UNIT_FILES); do \
	  sed 's|/usr/bin/mayfly|$(BINDIR)/mayfly|g' units/$$u >$(DESTDIR)$(UNITDIR)/$$u && \
	  chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	for m in $(MAN_PAGES); do install -D -m 0644 packaging/man/$$m $(DESTDIR)$(MANDIR)/$$m || exit 1; done
	install -m 0644 $(DOC_FILES) $(DESTDIR)$(DOCDIR)/
	install -m 0644 examples/job.json $(DESTDIR)$(DOCDIR)/examples/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/mayfly $(UNIT_FILES:%=$(DESTDIR)$(UNITDIR)/%) $(MAN_PAGES:%=$(DESTDIR)$(MANDIR)/%) \
	      $(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(DOC_FILES))) $(DESTDIR)$(DOCDIR)/examples/job.json
	-rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) $(DESTDIR)$(SYSCONFDIR)/mayfly 2>/dev/null

clean:
	rm -rf $(BUILD) mayfly
include packaging/static.mk
include packaging/packaging.mk
include tests/vm/vm.mk

# mayfly — GNU make, flags from pkg-config.
VERSION    := 0.1.0
PREFIX     ?= /usr
BINDIR     ?= $(PREFIX)/bin
DESTDIR    ?=
SHARED     ?= ../shared
CC         ?= cc
PKGS       := libcurl libcjson expat libcrypto libsystemd libarchive
CFLAGS     ?= -O2 -g
WARN       := -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Wno-unused-parameter \
              -Wno-format-truncation
XCFLAGS    := -std=gnu11 -D_GNU_SOURCE -Iinclude -DMAYFLY_VERSION='"$(VERSION)"' $(WARN) \
              $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LIBS       := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -ldl -lm
BUILD      ?= build

SRCS       := $(wildcard agent/*.c)
OBJS       := $(SRCS:agent/%.c=$(BUILD)/agent/%.o) $(BUILD)/agent/units_blob.o
LIBOBJS    := $(filter-out $(BUILD)/agent/main.o,$(OBJS))
UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all test unit demo bench install clean deps

all: $(BUILD)/mayfly

$(BUILD)/agent/%.o: agent/%.c $(wildcard include/*.h) | deps
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(XCFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/agent/units_blob.o: agent/units_blob.S $(wildcard units/*)
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

bench: all
	@sh tests/deps.sh bench
	python3 bench/bench.py --build $(BUILD)
	python3 bench/bench_run.py --build $(BUILD)

install: all
	install -D -m 0755 $(BUILD)/mayfly $(DESTDIR)$(BINDIR)/mayfly

clean:
	rm -rf $(BUILD) mayfly

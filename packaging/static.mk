# SPDX-License-Identifier: Apache-2.0
# static.mk — `make static`: $(BUILD)/static/mayfly, one fully static, stripped x86_64 binary (musl, curl and
# agent/crypto.c on OpenSSL 3.0 built for musl, no libsystemd) for any Linux AMI. Included by the top Makefile, whose
# SRCS, WARN and VERSION it uses. The libraries come from packaging/static/deps.sh: built once from Debian 12 source
# packages into /var/cache/mayfly-static (MAYFLY_STATIC_CACHE), which prints their prefix. Recipe and pitfalls:
# STATIC.md in shared/.
STATIC_DIR     := $(BUILD)/static
STATIC_CC      := musl-gcc
STATIC_PKGS    := libcurl libcrypto libcjson expat libarchive zlib
# no unwind tables, as the libraries (packaging/static/deps.sh): nothing unwinds C frames
STATIC_CFLAGS  ?= -Os -fstack-protector-strong -fno-asynchronous-unwind-tables -fno-unwind-tables
STATIC_OBJS    := $(SRCS:agent/%.c=$(STATIC_DIR)/agent/%.o) $(BLOBS:agent/%.S=$(STATIC_DIR)/agent/%.o)
STATIC_HDRS    := $(HDRS) $(wildcard packaging/static/include/systemd/*.h)

.PHONY: static

# deps.sh first (it may take minutes once); then a make that knows the prefix builds the binary. The prefix is
# kept in $(STATIC_DIR)/deps-prefix, rewritten only when it changes, so other libraries rebuild every object.
static:
	@prefix=$$(sh packaging/static/deps.sh) && mkdir -p $(STATIC_DIR) && \
	  { echo "$$prefix" | cmp -s - $(STATIC_DIR)/deps-prefix || echo "$$prefix" >$(STATIC_DIR)/deps-prefix; } && \
	  $(MAKE) --no-print-directory STATIC_PREFIX="$$prefix" $(STATIC_DIR)/mayfly
	@ls -l $(STATIC_DIR)/mayfly | awk '{ print "  static  " $$NF ": " $$5 " bytes" }'

ifneq ($(STATIC_PREFIX),)
STATIC_PC      := PKG_CONFIG_LIBDIR=$(STATIC_PREFIX)/lib/pkgconfig PKG_CONFIG_PATH= pkg-config --static
STATIC_XCFLAGS := -std=gnu11 -D_GNU_SOURCE -DMAYFLY_STATIC -Iinclude -Ipackaging/static/include \
                  -idirafter $(STATIC_PREFIX)/kernel -DMAYFLY_VERSION='"$(VERSION)"' $(WARN) \
                  -ffunction-sections -fdata-sections $(shell $(STATIC_PC) --cflags $(STATIC_PKGS))
STATIC_LIBS    := $(shell $(STATIC_PC) --libs $(STATIC_PKGS)) -lpthread

$(STATIC_DIR)/agent/%.o: agent/%.c $(STATIC_HDRS) $(STATIC_DIR)/deps-prefix
	@mkdir -p $(dir $@)
	@echo "  CC      $< (static)"
	@$(STATIC_CC) $(STATIC_XCFLAGS) $(STATIC_CFLAGS) -c -o $@ $<

$(STATIC_DIR)/agent/cmd/%_blob.o: agent/cmd/%_blob.S $(BLOB_DATA)
	@mkdir -p $(dir $@)
	@echo "  AS      $< (static)"
	@$(STATIC_CC) -c -Wa,-I,$(CURDIR) -o $@ $<

# mayfly.debug keeps the symbols; mayfly is stripped
$(STATIC_DIR)/mayfly: $(STATIC_OBJS)
	@echo "  LD      $@"
	@$(STATIC_CC) -static $(STATIC_CFLAGS) -Wl,--gc-sections -o $@.debug $^ $(STATIC_LIBS)
	@strip -o $@ $@.debug
endif

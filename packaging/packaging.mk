# SPDX-License-Identifier: Apache-2.0
# Packages: `make deb` and `make rpm` (included by the top Makefile; packaging/README.md describes both).
# They package the binary the normal build makes ($(BUILD)/mayfly) and rebuild only when an input changed.

DEB_REVISION ?= 1
RPM_RELEASE  ?= 1
DEB_ARCH     := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
RPM_ARCH     := $(shell uname -m)
PKG_OUT      := $(BUILD)/packages
DEB_FILE     := $(PKG_OUT)/mayfly_$(VERSION)_$(DEB_ARCH).deb
RPM_FILE     := $(PKG_OUT)/mayfly-$(VERSION)-$(RPM_RELEASE).$(RPM_ARCH).rpm
PKG_INPUTS   := $(BUILD)/mayfly $(wildcard units/*.service units/*.timer) packaging/man/man1/mayfly.1 \
                packaging/man/man5/mayfly-job.5 README.md docs/job-spec.md docs/job-schema.json examples/job.json \
                packaging/packaging.mk

.PHONY: deb rpm packages

deb: $(DEB_FILE)
rpm: $(RPM_FILE)
packages: deb rpm

$(DEB_FILE): $(PKG_INPUTS) $(wildcard packaging/deb/*)
	@sh packaging/deb/build.sh $(VERSION) $(DEB_REVISION) $(BUILD)/mayfly $@ $(BUILD)/packaging/deb

$(RPM_FILE): $(PKG_INPUTS) $(wildcard packaging/rpm/*)
	@sh packaging/rpm/build.sh $(VERSION) $(RPM_RELEASE) $(BUILD)/mayfly $@ $(BUILD)/packaging/rpm

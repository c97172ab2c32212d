# SPDX-License-Identifier: Apache-2.0
# `make test-vm`: mayfly on a simulated EC2 instance: a Debian 12 guest under qemu (TCG) whose real cloud-init
# installs mayfly from user-data that `mayfly userdata` renders, against the fake cloud (moto + IMDS fake).
# One boot per scenario; the guest image is cached in /var/cache/mayfly-test/vm-<key>. See tests/vm/README.md.
# VM_K=NAME runs only the scenarios whose name contains NAME. The deb and static scenarios use
# $(BUILD)/packages/mayfly_*_amd64.deb and $(BUILD)/static/mayfly when they exist (skipped otherwise; not built here).
.PHONY: test-vm
test-vm: all
	@sh tests/deps.sh test
	@sh tests/deps.sh vm
	python3 tests/vm/run_vm.py --build $(BUILD) $(if $(VM_K),-k $(VM_K))

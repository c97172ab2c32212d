#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian packages a target needs when they are missing (root only); quiet when all are present.
# test: also headless Chromium and tidy (report.html is rendered and validated), openssl (a webhook's test CA), time
# (GNU time: the peak RSS of a command reading hostile S3 answers), and Ceph's mon, osd and RADOS Gateway
# (tests/blackbox/rgw.py: a second, real S3 on loopback), those without their recommends (about 60 packages);
# nftables (the agent closes IMDS to the run user with it) and Debian's python3-boto3 (an experiment's own AWS
# client, as the run user: the machine's Python is under /root).
# demo: nftables (the demo's experiment is kept from the instance role).
# vm (make test-vm): qemu (TCG), debootstrap for the guest image, netcat for the IMDS forward (qemu's guestfwd runs
# `nc` per guest connection), e2fsprogs (mkfs.ext4 -d), without qemu's recommends (firmware, GUI).
set -e
apt_opts=""
bare=""   # installed in an apt call of their own, --no-install-recommends
want="libcurl4-openssl-dev libcjson-dev libexpat1-dev libssl-dev libsystemd-dev libarchive-dev libinih-dev libyaml-dev zlib1g-dev pkg-config gcc make"
case "$1" in
  test)  want="$want curl faketime python3-yaml python3-jsonschema python3-jinja2 python3-configobj python3-jsonpatch \
               python3-netifaces python3-oauthlib python3-requests python3-serial chromium tidy openssl time \
               nftables python3-boto3 python3-torch"
         bare="radosgw ceph-mon ceph-osd" ;;
  demo)  want="$want curl nftables" ;;
  bench) want="$want curl nginx-light time openssl" ;;
  vm)    want="$want qemu-system-x86 debootstrap netcat-openbsd e2fsprogs util-linux"; apt_opts="--no-install-recommends" ;;
esac
# missing_of PACKAGES: those not installed
missing_of() {
  m=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || m="$m $p"
  done
  echo "$m"
}
missing=$(missing_of $want)
missing_bare=$(missing_of $bare)
if [ -n "$missing$missing_bare" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "mayfly: missing Debian packages:$missing$missing_bare (run as root or install them)" >&2; exit 1
  fi
  echo "installing:$missing$missing_bare" >&2
  apt-get update -qq >/dev/null
  [ -z "$missing" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $apt_opts $missing >/dev/null
  [ -z "$missing_bare" ] || \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing_bare >/dev/null
fi
# The Makefile takes every flag from pkg-config: say which library it would not find, rather than fail to link.
if [ "$1" = build ]; then
  for m in libcurl libcjson expat libcrypto libsystemd libarchive inih yaml-0.1; do
    pkg-config --exists "$m" || { echo "mayfly: pkg-config does not find $m (its -dev package is broken?)" >&2; exit 1; }
  done
fi
if [ "$1" != build ]; then
  python3 -c "import moto, boto3, botocore" 2>/dev/null || {
    echo "mayfly: the tests need python3 with moto 5.2.1, boto3 and botocore (the machine's Python has them)" >&2; exit 1; }
fi
# cloud-init itself, unpacked (not installed: the machine is no cloud instance) for its schema check.
if [ "$1" = test ] && [ ! -x /var/cache/mayfly-test/cloud-init/usr/bin/cloud-init ]; then
  mkdir -p /var/cache/mayfly-test && cd /var/cache/mayfly-test
  apt-get download cloud-init >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get download cloud-init >/dev/null; }
  rm -rf cloud-init && dpkg -x cloud-init_*.deb cloud-init && rm -f cloud-init_*.deb
fi

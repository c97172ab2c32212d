#!/bin/sh
# Installs what `make test-vm` needs on the host when it is missing (root only): qemu (TCG), debootstrap for the
# guest image, netcat for the IMDS forward (qemu guestfwd runs `nc` per guest connection), e2fsprogs (mkfs.ext4 -d).
set -e
want="qemu-system-x86 debootstrap netcat-openbsd e2fsprogs util-linux"
missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "mayfly: make test-vm needs:$missing (run as root or install them)" >&2; exit 1
  fi
  echo "installing:$missing" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

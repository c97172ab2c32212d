#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Builds the guest for `make test-vm`: a Debian 12 root file system (debootstrap, minbase) with systemd,
# cloud-init and the runtime libraries mayfly links against, but not mayfly itself. The result is cached outside
# the repository, keyed by this script's text (the package list and every customisation live here), so later
# runs skip the build:
#
#   $CACHE/vm-<key>/disk.img   raw ext4 root file system (boots as /dev/vda; each boot uses a qcow2 overlay)
#   $CACHE/vm-<key>/vmlinuz    the guest kernel and initrd, booted directly with -kernel/-initrd
#   $CACHE/vm-<key>/initrd.img
#
# Usage: build_image.sh [CACHE]   (default /var/cache/mayfly-test); prints the image directory. Needs root.
set -eu
CACHE=${1:-/var/cache/mayfly-test}
SUITE=bookworm
MIRROR=${MAYFLY_VM_MIRROR:-http://deb.debian.org/debian}
# Boot, cloud-init (python3-cffi-backend named: minbase does not resolve virtual packages), the network tools
# cloud-init's ENI renderer and its ephemeral DHCP use, dbus so systemd-logind handles the ACPI power button
# (how the harness "terminates" the instance), mayfly's runtime libraries, and mdadm (the instance store's RAID 0,
# "scratch": "instance-store").
INCLUDE=systemd,systemd-sysv,udev,dbus,cloud-init,python3-cffi-backend,curl,ca-certificates,iproute2,ifupdown
INCLUDE=$INCLUDE,isc-dhcp-client,linux-image-amd64,netbase,sudo,procps,nftables
INCLUDE=$INCLUDE,libcurl4,libcjson1,libexpat1,libarchive13,libssl3,libsystemd0,libinih1,mdadm

key=$(cat "$0" | sha256sum | cut -c1-16)
out="$CACHE/vm-$key"
if [ -f "$out/disk.img" ] && [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.img" ]; then
  echo "$out"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "build_image.sh: needs root (debootstrap)" >&2; exit 1; }
mkdir -p "$CACHE"
# One build at a time; whoever waited finds the image built.
exec 9>"$CACHE/vm.lock"
flock 9
if [ -f "$out/disk.img" ]; then echo "$out"; exit 0; fi
work=$(mktemp -d "$CACHE/vm-build.XXXXXX")
trap 'rm -rf "$work" "$out.tmp"' EXIT
root="$work/rootfs"
t0=$(date +%s)
echo "vm image: debootstrap $SUITE into $root (cached afterwards as $out)" >&2
debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
  tail -n 40 "$work/debootstrap.log" >&2
  [ -f "$root/debootstrap/debootstrap.log" ] && tail -n 40 "$root/debootstrap/debootstrap.log" >&2
  exit 1
}

# --- customisation (any change here changes the cache key) ---
echo mayfly-vm >"$root/etc/hostname"
printf '127.0.0.1 localhost\n' >"$root/etc/hosts"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' >"$root/etc/fstab"
printf 'auto lo\niface lo inet loopback\nsource /etc/network/interfaces.d/*\n' >"$root/etc/network/interfaces"
cat >"$root/etc/cloud/cloud.cfg.d/99-mayfly-vm.cfg" <<'EOF'
# The simulated EC2 instance: only the Ec2 datasource (IMDS at 169.254.169.254, forwarded to the fake).
datasource_list: [ Ec2, None ]
datasource:
  Ec2:
    metadata_urls: [ "http://169.254.169.254" ]
    timeout: 5
    max_wait: 60
# No locales package: C.UTF-8 needs no locale-gen (an en_US default fails and costs seconds under TCG).
locale: C.UTF-8
# Keep the image's empty package sources (below): an install that would need the network fails instead of
# quietly downloading from the internet.
apt:
  preserve_sources_list: true
EOF
echo "# empty: the test guest installs only what the test serves it" >"$root/etc/apt/sources.list"
# The whole journal goes, live, to the second serial port (a file on the host): the agent's log survives the
# guest however it ends, and the harness prints it when a scenario fails.
mkdir -p "$root/etc/systemd/journald.conf.d"
cat >"$root/etc/systemd/journald.conf.d/99-mayfly-vm.conf" <<'EOF'
[Journal]
ForwardToConsole=yes
TTYPath=/dev/ttyS1
MaxLevelConsole=info
Storage=volatile
EOF
# qemu 7.2 cannot set an NVMe controller's model string: every qemu NVMe device reads "QEMU NVMe Ctrl". To play
# an EBS volume, a controller whose serial starts with "vol" (as EBS's do) gets the model EBS reports, bind-mounted
# over its sysfs model file before mayfly starts (the agent reads the model from sysfs, as on EC2).
mkdir -p "$root/usr/local/sbin"
cat >"$root/usr/local/sbin/mayfly-vm-ebs-model" <<'EOF'
#!/bin/sh
printf 'Amazon Elastic Block Store              \n' >/run/mayfly-vm-ebs-model
for c in /sys/class/nvme/nvme*; do
  case "$(cat "$c/serial" 2>/dev/null)" in
    vol*) mount --bind /run/mayfly-vm-ebs-model "$c/model" && echo "$c plays an EBS volume" ;;
  esac
done
exit 0
EOF
chmod 0755 "$root/usr/local/sbin/mayfly-vm-ebs-model"
cat >"$root/etc/systemd/system/mayfly-vm-ebs-model.service" <<'EOF'
[Unit]
Description=test guest: NVMe devices with a vol* serial read as EBS volumes
After=systemd-udev-settle.service local-fs.target
Before=mayfly.service cloud-final.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/mayfly-vm-ebs-model
[Install]
WantedBy=multi-user.target
EOF
chroot "$root" systemctl enable mayfly-vm-ebs-model.service >/dev/null 2>&1
# No root password (the console is for reading only); no getty on the serial console competing with boot output.
chroot "$root" passwd -d root >/dev/null
chroot "$root" systemctl mask serial-getty@ttyS0.service serial-getty@ttyS1.service getty@tty1.service >/dev/null 2>&1
# A fresh machine-id on every boot, as on a new instance; no cloud-init state from the build.
: >"$root/etc/machine-id"
rm -rf "$root/var/lib/cloud"/* "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/*_Packages
# --- end of customisation ---

kernel=$(ls "$root"/boot/vmlinuz-* | sort | tail -n 1)
initrd=$(ls "$root"/boot/initrd.img-* | sort | tail -n 1)
cp "$kernel" "$work/vmlinuz"
cp "$initrd" "$work/initrd.img"
truncate -s 3G "$work/disk.img"
mkfs.ext4 -q -F -L rootfs -d "$root" "$work/disk.img"
rm -rf "$root"
mkdir -p "$out.tmp"
mv "$work/disk.img" "$work/vmlinuz" "$work/initrd.img" "$out.tmp/"
rm -rf "$out"
mv "$out.tmp" "$out"
# Images of earlier versions of this script are never used again.
for old in "$CACHE"/vm-????????????????; do
  [ "$old" = "$out" ] || rm -rf "$old"
done
echo "vm image: built in $(( $(date +%s) - t0 )) s" >&2
echo "$out"

#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Builds the .rpm with rpmbuild from packaging/rpm/mayfly.spec (called by `make rpm`).
# Usage: build.sh VERSION RELEASE BINARY OUT.rpm STAGE_DIR   (run from the repository root)
set -eu
version=$1 release=$2 binary=$3 out=$4 stage=$5
here=packaging/rpm
umask 022

if ! command -v rpmbuild >/dev/null 2>&1; then
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		echo "make rpm: rpmbuild is missing (Debian: apt-get install rpm; Fedora/AL2023: dnf install rpm-build)" >&2
		exit 1
	fi
	echo "installing: rpm" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rpm >/dev/null 2>&1 || {
		apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rpm >/dev/null; }
fi

# The spec's newest %changelog entry must be this version-release.
top=$(sed -n '/^%changelog/{n;p;q}' "$here/mayfly.spec" | sed 's/.* - //')
if [ "$top" != "$version-$release" ]; then
	echo "make rpm: the %changelog of packaging/rpm/mayfly.spec is at $top but the package is $version-$release:" >&2
	echo "  add an entry or set RPM_RELEASE" >&2
	exit 1
fi

# Debian's rpm has no systemd-rpm-macros: load the copy shipped here only where the macros are missing.
load=""
[ -n "$(rpm -E '%{?_unitdir}')" ] || load="--load=$here/macros.systemd"
# Debian's brp-compress (which gzips the man pages) needs bash but says #!/bin/sh (dash there).
compress=""
[ ! -f /etc/debian_version ] || compress="bash %{_rpmconfigdir}/brp-compress %{?_prefix}"

src=$(pwd)
bin=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")
rm -rf "$stage"
mkdir -p "$stage"
stage=$(cd "$stage" && pwd)
# shellcheck disable=SC2086
rpmbuild -bb --quiet $load \
	--define "_topdir $stage" \
	--define "mayfly_version $version" --define "mayfly_release $release" \
	--define "mayfly_src $src" --define "mayfly_binary $bin" \
	--define "source_date_epoch_from_changelog 1" \
	--define "use_source_date_epoch_as_buildtime 1" \
	--define "clamp_mtime_to_source_date_epoch 1" \
	--define "_buildhost mayfly-build" \
	${compress:+--define "__brp_compress $compress"} \
	"$here/mayfly.spec"
mkdir -p "$(dirname "$out")"
mv "$stage/RPMS/$(uname -m)/$(basename "$out")" "$out"
echo "  RPM     $out"

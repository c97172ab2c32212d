#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Builds the .deb from a staged tree with dpkg-deb, the way debhelper would lay it out (called by `make deb`).
# Usage: build.sh VERSION REVISION BINARY OUT.deb STAGE_DIR   (run from the repository root)
set -eu
version=$1 revision=$2 binary=$3 out=$4 stage=$5
full="$version-$revision"
here=packaging/deb
umask 022

need() {  # need COMMAND PACKAGE: install a missing build tool (as root), else explain
	command -v "$1" >/dev/null 2>&1 && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "make deb: $1 is missing (apt-get install $2)" >&2; exit 1
	fi
	echo "installing: $2" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null 2>&1 || {
		apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }
}
need dpkg-deb dpkg
need dpkg-shlibdeps dpkg-dev
need strip binutils

# The changelog's newest entry is the package version: a VERSION bump needs a changelog entry.
top=$(dpkg-parsechangelog -l "$here/changelog" -S Version)
if [ "$top" != "$full" ]; then
	echo "make deb: packaging/deb/changelog is at $top but the package is $full:" >&2
	echo "  add an entry (dch -c packaging/deb/changelog -v $full) or set DEB_REVISION" >&2
	exit 1
fi
# Reproducible: every timestamp is the changelog's.
SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l "$here/changelog" -S Timestamp)
export SOURCE_DATE_EPOCH

rm -rf "$stage"
root="$stage/root"
mkdir -p "$root/DEBIAN" "$stage/src/debian"

# /usr/bin/mayfly, stripped as dh_strip does (debug info and the symbol table out, build-id note kept).
install -D -m 0755 "$binary" "$root/usr/bin/mayfly"
strip --remove-section=.comment --remove-section=.note "$root/usr/bin/mayfly"

# systemd units: /lib/systemd/system on Debian 12 (usrmerge keeps the path valid).
for u in mayfly.service mayfly-failsafe.service mayfly-scratch.service mayfly-backstop.service mayfly-backstop.timer; do
	install -D -m 0644 "units/$u" "$root/lib/systemd/system/$u"
done

# Manual pages, gzip -9n (no name, no timestamp).
install -D -m 0644 packaging/man/man1/mayfly.1 "$root/usr/share/man/man1/mayfly.1"
install -D -m 0644 packaging/man/man5/mayfly-job.5 "$root/usr/share/man/man5/mayfly-job.5"
gzip -9n "$root/usr/share/man/man1/mayfly.1" "$root/usr/share/man/man5/mayfly-job.5"

# Documentation: dh_installdocs/dh_installexamples/dh_installchangelogs, then dh_compress (every file over
# 4 KiB and the changelog, never the copyright).
doc="$root/usr/share/doc/mayfly"
install -D -m 0644 README.md "$doc/README.md"
install -m 0644 docs/job-spec.md docs/job-schema.json "$doc/"
install -D -m 0644 examples/job.json "$doc/examples/job.json"
install -m 0644 "$here/copyright" "$doc/copyright"
install -m 0644 "$here/changelog" "$doc/changelog.Debian"
find "$doc" -type f ! -name copyright \( -size +4k -o -name 'changelog*' \) -exec gzip -9n {} +

# /etc/mayfly: the job (job.json, env) is written there by user-data; no conffiles.
install -d -m 0755 "$root/etc/mayfly"

# Maintainer scripts.
for s in postinst prerm postrm; do
	install -m 0755 "$here/$s" "$root/DEBIAN/$s"
done

# control: Depends from the binary's shared libraries (dpkg-shlibdeps reads the shlibs/symbols files of the
# packages that ship them), Installed-Size and the rest from dpkg-gencontrol.
cp "$here/control" "$stage/src/debian/control"
cp "$here/changelog" "$stage/src/debian/changelog"
root_abs=$(cd "$root" && pwd)
(
	cd "$stage/src"
	dpkg-shlibdeps -Tdebian/substvars -e"$root_abs/usr/bin/mayfly"
	echo "misc:Depends=" >>debian/substvars
	dpkg-gencontrol -pmayfly -v"$full" -Tdebian/substvars -P"$root_abs" -fdebian/files
)

# md5sums (dh_md5sums).
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | LC_ALL=C sort | sed 's|^\./||' |
	xargs md5sum >DEBIAN/md5sums)
chmod 0644 "$root/DEBIAN/md5sums" "$root/DEBIAN/control"

find "$root" -newermt "@$SOURCE_DATE_EPOCH" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$(dirname "$out")"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out.tmp" >/dev/null
mv "$out.tmp" "$out"
echo "  DEB     $out"

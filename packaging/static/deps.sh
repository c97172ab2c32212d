#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# deps.sh — builds the libraries of mayfly's static binary (curl + OpenSSL 3.0, cJSON, expat, libarchive, zlib, zstd)
# with musl-gcc from Debian 12 source packages, into a cache outside the repository, and prints the install prefix.
# The recipe, its pitfalls and its numbers: shared/platform/STATIC.md (written for mbedTLS; OpenSSL replaced it for
# its AES-NI GCM, see build_openssl). Run as root (it installs the build tools and enables deb-src in apt for as long
# as `apt-get source` runs). A cached run takes well under a second.
#
#   MAYFLY_STATIC_CACHE  cache directory (default /var/cache/mayfly-static); one deps-<key>/ per set of versions,
#                        flags, patches and toolchain, with prefix/, logs/ and the stamp `ok`
#   JOBS                 parallel make jobs (default: the number of CPUs)
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${MAYFLY_STATIC_CACHE:-/var/cache/mayfly-static}
JOBS=${JOBS:-$(nproc)}

# Debian 12 source packages (STATIC.md: expat's +deb12u5 is listed but missing from the mirror; so is openssl's
# 3.0.22-1~deb12u2 from bookworm-security, the dynamic build's libssl3: the static one takes bookworm's 3.0.20).
SOURCES="curl=7.88.1-10+deb12u15 openssl=3.0.20-1~deb12u2 expat=2.5.0-1+deb12u2 libarchive=3.6.2-1+deb12u5
zlib=1:1.2.13.dfsg-1 cjson=1.7.15-1+deb12u4 libzstd=1.5.4+dfsg2-5"
TOOLS="musl-tools musl-dev linux-libc-dev autoconf automake libtool quilt cmake pkgconf dpkg-dev make patch perl"
# No unwind tables (.eh_frame, ~10 % of the binary): C throws nothing, and nothing in mayfly prints a backtrace.
DEP_CFLAGS="-Os -fPIC -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables -fno-unwind-tables"
# OpenSSL trimmed to what a TLS 1.2/1.3 client of S3 and EC2 needs (ECDHE/DHE with RSA or ECDSA certificates,
# AES-GCM, ChaCha20-Poly1305, AES-CBC for old TLS 1.2 servers) and what agent/crypto.c uses (SHA-256, HMAC, MD5,
# base64). Its default provider lists every algorithm compiled in, so --gc-sections drops none of them: what is not
# needed is left out here. The assembler stays: its stitched AES-NI/PCLMULQDQ GCM is why the static build uses it.
OPENSSL_NO="no-shared no-tests no-module no-dso no-engine no-legacy no-comp no-async no-autoload-config
no-secure-memory no-ssl3 no-tls1 no-tls1_1 no-dtls no-srp no-psk no-srtp no-nextprotoneg no-ssl-trace no-ui-console
no-ocsp no-cms no-ts no-ct no-cmp no-rfc3779 no-camellia no-aria no-seed no-sm2 no-sm3 no-sm4 no-idea no-whirlpool
no-rc2 no-rc4 no-rc5 no-md4 no-mdc2 no-des no-bf no-cast no-rmd160 no-gost no-siphash no-siv no-ocb no-scrypt
no-blake2 no-dsa no-ec2m"

say() { echo "static deps: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$(uname -m)" = x86_64 ] || die "the static build is x86_64 only (this is $(uname -m))"

ensure_tools() {
        missing=""
        for p in $TOOLS; do
                dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
        done
        [ -z "$missing" ] && return 0
        [ "$(id -u)" = 0 ] || die "missing Debian packages:$missing (run as root or install them)"
        say "installing:$missing"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null 2>&1 || {
                apt-get update -qq >/dev/null
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
        }
}

# Everything the result depends on; its hash names the cache entry.
manifest() {
        echo "$SOURCES" "$DEP_CFLAGS" "$OPENSSL_NO"
        dpkg-query -W -f='${Package} ${Version}\n' musl-dev gcc binutils
        cat "$HERE/deps.sh" "$HERE"/patches/*.patch
}

# ---- sources: deb-src enabled only while apt-get source runs ----

SRC_LIST=/etc/apt/sources.list.d/mayfly-static-src.sources
SRC_LIST_OLD=/etc/apt/sources.list.d/mayfly-static-src.list

disable_deb_src() {
        if [ -e "$SRC_LIST" ] || [ -e "$SRC_LIST_OLD" ]; then
                rm -f "$SRC_LIST" "$SRC_LIST_OLD"
                apt-get update -qq >/dev/null 2>&1 || true
        fi
}

enable_deb_src() {
        [ "$(id -u)" = 0 ] || die "fetching the Debian source packages needs root"
        trap 'disable_deb_src' EXIT
        trap 'exit 130' INT TERM
        # the same URIs and suites as the binary sources, deb822 or one-line format
        if [ -f /etc/apt/sources.list.d/debian.sources ]; then
                sed 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$SRC_LIST"
        fi
        if [ -f /etc/apt/sources.list ] && grep -q '^deb ' /etc/apt/sources.list; then
                sed -n 's/^deb /deb-src /p' /etc/apt/sources.list >"$SRC_LIST_OLD"
        fi
        [ -e "$SRC_LIST" ] || [ -e "$SRC_LIST_OLD" ] || die "no Debian apt sources found to derive deb-src from"
        apt-get update -qq >/dev/null || die "apt-get update with deb-src failed"
}

fetch_sources() {
        enable_deb_src
        # one package at a time: if one file is missing, apt-get source unpacks none of a batch
        for s in $SOURCES; do
                (cd "$SRC" && apt-get source -qq "$s" >"$LOGS/fetch-${s%%=*}.log" 2>&1) || {
                        say "apt-get source $s failed (log: $LOGS/fetch-${s%%=*}.log); versions offered:"
                        apt-cache showsrc "${s%%=*}" 2>/dev/null | sed -n 's/^Version: /  /p' >&2
                        die "update SOURCES in packaging/static/deps.sh"
                }
        done
        disable_deb_src
        trap - EXIT INT TERM
}

srcdir() {
        for d in "$SRC/$1"-[0-9]*/; do
                [ -d "$d" ] && { echo "${d%/}"; return 0; }
        done
        die "no unpacked source for $1 in $SRC"
}

# step NAME COMMAND...: runs a build step in a subshell, output to logs/NAME.log, and reports its time.
step() {
        name=$1
        shift
        t0=$(date +%s)
        # in the background, so that `set -e` holds inside (it is off in a subshell tested by `if`)
        ("$@") >"$LOGS/$name.log" 2>&1 &
        if ! wait $!; then
                tail -n 30 "$LOGS/$name.log" >&2
                die "$name failed (log: $LOGS/$name.log)"
        fi
        say "$name: $(($(date +%s) - t0)) s"
}

cmake_build() {  # cmake_build SOURCE_DIR EXTRA_ARGS...
        dir=$1
        shift
        mkdir -p "$dir/build-musl"
        cd "$dir/build-musl"
        cmake .. -DCMAKE_C_COMPILER=musl-gcc -DCMAKE_BUILD_TYPE=MinSizeRel -DCMAKE_C_FLAGS="$DEP_CFLAGS" \
                -DCMAKE_INSTALL_PREFIX="$P" -DCMAKE_INSTALL_LIBDIR=lib "$@"
}

# zlib at Debian's -O3 -DUNALIGNED_OK (debian/rules on amd64), not -Os: its crc32_z checks every upload and download
# (the CRC32 checksums) and runs 2x faster so; at -Os it was a quarter of a static upload's CPU over TLS.
build_zlib() {
        cd "$(srcdir zlib)"
        CFLAGS="$DEP_CFLAGS -O3 -DUNALIGNED_OK" ./configure --static --prefix="$P"
        make -j"$JOBS" libz.a
        make install
}

# OpenSSL 3.0 with its assembler (AES-NI GCM, SHA extensions). OPENSSLDIR names no directory on any distribution:
# the static binary reads no system openssl.cnf (each distribution's names its own providers, engines and crypto
# policies), and curl gives it the CA bundle it finds (curl-ca-bundle-search.patch). Only the libraries are built
# (build_libs, install_dev): no openssl program, no manual.
# Configure reads LDFLAGS without -static: seeing it, OpenSSL 3.0 quietly turns off threads (no OPENSSL_THREADS: its
# locks do nothing), and curl's transfer threads then corrupt its heap.
build_openssl() {
        cd "$(srcdir openssl)"
        LDFLAGS="-L$P/lib" ./Configure linux-x86_64 --prefix="$P" --libdir=lib \
                --openssldir=/nonexistent/mayfly-static/ssl --with-rand-seed=os $OPENSSL_NO
        grep -q '^# *define OPENSSL_THREADS$' include/openssl/configuration.h
        make -j"$JOBS" build_libs
        make install_dev
}

build_expat() {
        cmake_build "$(srcdir expat)/expat" -DEXPAT_SHARED_LIBS=OFF -DEXPAT_BUILD_TOOLS=OFF -DEXPAT_BUILD_EXAMPLES=OFF \
                -DEXPAT_BUILD_TESTS=OFF -DEXPAT_BUILD_DOCS=OFF -DEXPAT_BUILD_FUZZERS=OFF -DEXPAT_BUILD_PKGCONFIG=ON
        # a Debian CVE backport tests `#if XML_DTD == 1`; CMake defines XML_DTD without a value (STATIC.md pitfall 3)
        sed -i 's/^#define XML_DTD$/#define XML_DTD 1/' expat_config.h
        grep -q '^#define XML_DTD 1$' expat_config.h
        make -j"$JOBS"
        make install
}

build_cjson() {
        cmake_build "$(srcdir cjson)" -DBUILD_SHARED_LIBS=OFF -DENABLE_CJSON_TEST=OFF -DENABLE_CJSON_UTILS=OFF \
                -DENABLE_CUSTOM_COMPILER_FLAGS=OFF
        make -j"$JOBS"
        make install
}

build_zstd() {
        cd "$(srcdir libzstd)/lib"
        make -j"$JOBS" libzstd.a CC=musl-gcc CFLAGS="$DEP_CFLAGS" ZSTD_LEGACY_SUPPORT=0
        make install-static install-includes install-pc PREFIX="$P" LIBDIR="$P/lib"
}

build_libarchive() {
        cd "$(srcdir libarchive)"
        sh build/autogen.sh  # as debian/rules: without it libarchive.pc requires iconv.pc (STATIC.md pitfall 5)
        ./configure --host=x86_64-linux-musl --prefix="$P" --disable-dependency-tracking --disable-shared \
                --enable-static --disable-bsdtar --disable-bsdcpio --disable-bsdcat --disable-acl --disable-xattr \
                --with-zlib --with-zstd --without-bz2lib --without-libb2 --without-lz4 --without-lzma --without-lzo2 \
                --without-cng --without-mbedtls --without-nettle --without-openssl --without-xml2 --without-expat
        make -j"$JOBS"
        make install
}

build_curl() {
        cd "$(srcdir curl)"
        # apt-get source applied 90_gnutls and 99_nss, which rename the library; debian/rules pops them too
        QUILT_PATCHES=debian/patches quilt pop
        QUILT_PATCHES=debian/patches quilt pop
        patch -p1 <"$HERE/patches/curl-ca-bundle-search.patch"
        patch -p1 <"$HERE/patches/curl-keep-tls-buffers.patch"
        autoreconf -fi
        # the bundle below is only the fallback: curl-ca-bundle-search.patch picks the first one present at run time
        ./configure --host=x86_64-linux-musl --prefix="$P" --disable-dependency-tracking --disable-shared \
                --enable-static --with-openssl="$P" --with-zlib="$P" \
                --with-ca-bundle=/etc/ssl/certs/ca-certificates.crt --without-ca-path --without-ca-fallback \
                --enable-threaded-resolver --enable-ipv6 --disable-ftp --disable-file --disable-ldap --disable-ldaps \
                --disable-rtsp --disable-dict --disable-telnet --disable-tftp --disable-pop3 --disable-imap \
                --disable-smb --disable-smtp --disable-gopher --disable-mqtt --disable-manual --disable-ntlm \
                --disable-ntlm-wb --disable-tls-srp --disable-netrc --disable-alt-svc --disable-hsts \
                --disable-websockets --disable-doh --without-libpsl --without-libidn2 --without-nghttp2 \
                --without-ngtcp2 --without-nghttp3 --without-quiche --without-zstd --without-brotli --without-librtmp \
                --without-libssh2 --without-libssh --without-wolfssh --without-libgsasl --without-gssapi \
                --without-hyper
        grep -q '^#define USE_OPENSSL 1' lib/curl_config.h
        make -j"$JOBS" -C lib
        make -C lib install
        make -C include install
        make install-pkgconfigDATA
}

# musl-gcc sees no kernel headers (STATIC.md pitfall 9); runner.c needs <linux/close_range.h>. Point at the
# Debian ones (linux-libc-dev), searched after musl's own headers.
kernel_headers() {
        mkdir -p "$P/kernel"
        ln -sfn /usr/include/linux "$P/kernel/linux"
        ln -sfn /usr/include/asm-generic "$P/kernel/asm-generic"
        ln -sfn /usr/include/x86_64-linux-gnu/asm "$P/kernel/asm"
        [ -f "$P/kernel/linux/close_range.h" ]
}

build_all() {
        t_all=$(date +%s)
        rm -rf "$DIR"
        mkdir -p "$SRC" "$LOGS" "$P"
        say "building into $DIR (logs in $LOGS)"
        t0=$(date +%s)
        fetch_sources
        say "apt-get source: $(($(date +%s) - t0)) s"
        export CC=musl-gcc AR=ar RANLIB=ranlib CFLAGS="$DEP_CFLAGS" CPPFLAGS="-I$P/include" \
                LDFLAGS="-L$P/lib -static" PKG_CONFIG_PATH="$P/lib/pkgconfig" PKG_CONFIG_LIBDIR="$P/lib/pkgconfig"
        unset MAKEFLAGS MFLAGS MAKELEVEL
        step zlib build_zlib
        step openssl build_openssl
        step expat build_expat
        step cjson build_cjson
        step zstd build_zstd
        step libarchive build_libarchive
        step curl build_curl
        step kernel-headers kernel_headers
        PKG_CONFIG_LIBDIR="$P/lib/pkgconfig" pkg-config --static --libs libcurl libcjson expat libarchive >/dev/null ||
                die "pkg-config cannot resolve the static libraries in $P"
        rm -rf "$SRC"
        manifest >"$DIR/ok"
        say "done in $(($(date +%s) - t_all)) s"
}

ensure_tools
KEY=$(manifest | sha256sum | cut -c1-16)
DIR=$CACHE/deps-$KEY
P=$DIR/prefix
SRC=$DIR/src
LOGS=$DIR/logs
if [ ! -f "$DIR/ok" ]; then
        mkdir -p "$CACHE"
        exec 9>"$CACHE/.lock"
        flock 9  # another `make static` may be building the same entry
        [ -f "$DIR/ok" ] || build_all
        exec 9>&-
fi
echo "$P"

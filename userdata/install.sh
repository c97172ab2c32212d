#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# mayfly's install script (userdata/install.sh), run once by cloud-init from the user-data's runcmd:
#
#   sh /var/lib/mayfly-install.sh ROUTE [SOURCE SHA256 [REGION]]
#
#   ROUTE    preinstalled  mayfly and its units are on the image already (a package, make install)
#            deb, rpm      the package at SOURCE (apt-get on Debian/Ubuntu; dnf or yum on Amazon Linux/Fedora)
#            binary        the mayfly binary at SOURCE (the static build runs on any x86_64 Linux); its units
#                          go to /etc/systemd/system (`mayfly install-units`)
#   SOURCE   an https:// (or http://) URL, or s3://BUCKET/KEY read with the instance role: a SigV4-signed GET by
#            curl 7.75 or later, else `aws s3 cp`
#   SHA256   the file's SHA-256, checked before anything from the download runs
#   REGION   the bucket's region for an s3:// SOURCE (default: AWS_REGION in /etc/mayfly/env, else the instance's)
#
# The S3 endpoint and IMDS are the agent's: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL and
# AWS_EC2_METADATA_SERVICE_ENDPOINT in /etc/mayfly/env. Then the experiments' user (mayfly, unless the image
# has ec2-user or ubuntu), the backstop timer and the agent are started. Any failure powers the instance off:
# a broken install never leaves an instance running.
set -eu
route=${1:-preinstalled} src=${2:-} sum=${3:-} region=${4:-}
fail() {
  trap - EXIT
  [ -z "${tmp:-}" ] || rm -rf "$tmp"
  echo "mayfly install: $*" >&2
  logger -t mayfly-install "$*" 2>/dev/null || true
  systemctl poweroff || poweroff -f
  exit 1
}
trap 'fail "install script failed"' EXIT
tmp=$(mktemp -d)

setting() { sed -n "s/^$1=//p" /etc/mayfly/env 2>/dev/null | tail -n 1; }
imds_get() { curl -fsS --retry 5 --retry-connrefused -H "X-aws-ec2-metadata-token: $token" "$imds/latest/$1"; }
# A string from the role credentials IMDS gives (JSON, one "Key" : "value" a line).
field() { printf '%s\n' "$creds" | tr ',' '\n' | sed -n "s/^[^\"]*\"$1\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p"; }

s3_get() {  # s3_get s3://BUCKET/KEY FILE
  bucket=${1#s3://} key=${1#s3://*/}
  bucket=${bucket%%/*}
  if curl --help all 2>/dev/null | grep -q -- --aws-sigv4; then
    imds=$(setting AWS_EC2_METADATA_SERVICE_ENDPOINT)
    imds=${imds:-http://169.254.169.254}
    imds=${imds%/}
    token=$(curl -fsS --retry 5 --retry-connrefused -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 300" \
            "$imds/latest/api/token") || fail "no IMDS token from $imds"
    [ -n "$region" ] || region=$(setting AWS_REGION)
    [ -n "$region" ] || region=$(imds_get meta-data/placement/region) || fail "no region from IMDS"
    role=$(imds_get meta-data/iam/security-credentials/ | head -n 1) || true
    [ -n "$role" ] || fail "the instance has no IAM role to read $1 with"
    creds=$(imds_get "meta-data/iam/security-credentials/$role") || fail "IMDS gave no credentials for $role"
    ep=$(setting AWS_ENDPOINT_URL_S3)
    [ -n "$ep" ] || ep=$(setting AWS_ENDPOINT_URL)
    if [ -n "$ep" ]; then url="${ep%/}/$bucket/$key"
    elif [ "$bucket" != "${bucket#*.}" ]; then url="https://s3.$region.amazonaws.com/$bucket/$key"
    else url="https://$bucket.s3.$region.amazonaws.com/$key"
    fi
    # the role's secret reaches curl in a file of the private temporary directory, not on its command line
    (umask 077 && printf 'user = "%s:%s"\nheader = "x-amz-security-token: %s"\n' "$(field AccessKeyId)" \
      "$(field SecretAccessKey)" "$(field Token)" >"$tmp/s3.curlrc")
    curl -fsSL --retry 8 --retry-connrefused --aws-sigv4 "aws:amz:$region:s3" -K "$tmp/s3.curlrc" \
      -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" -o "$2" "$url" ||
      fail "cannot read $1 with the instance role $role (does its policy allow s3:GetObject there?)"
    rm -f "$tmp/s3.curlrc"
  elif command -v aws >/dev/null; then
    aws s3 cp --only-show-errors ${region:+--region "$region"} "$1" "$2" || fail "aws s3 cp $1 failed"
  else
    fail "reading $1 needs curl 7.75 or later (--aws-sigv4) or the AWS CLI"
  fi
}

fetch() {  # fetch SOURCE FILE
  case "$1" in
    s3://*/?*) s3_get "$1" "$2" ;;
    https://* | http://*)
      if command -v curl >/dev/null; then curl -fsSL --retry 8 --retry-connrefused -o "$2" "$1"
      else wget -q -O "$2" "$1"
      fi || fail "cannot download $1" ;;
    *) fail "cannot fetch '$1': SOURCE is an https://, http:// or s3://BUCKET/KEY address" ;;
  esac
}

verify() { echo "$sum  $1" | sha256sum -c - >/dev/null 2>&1 || fail "checksum mismatch for $src"; }

case "$route" in
  preinstalled | deb | rpm | binary) ;;
  *) fail "unknown route '$route' (preinstalled, deb, rpm, binary)" ;;
esac
if [ "$route" != preinstalled ]; then
  [ -n "$src" ] || fail "route $route needs SOURCE and SHA256"
  case "$sum" in
    *[!0-9a-fA-F]* | "") fail "SHA256 must be 64 hex digits" ;;
  esac
  [ ${#sum} -eq 64 ] || fail "SHA256 must be 64 hex digits"
fi
case "$route" in
  preinstalled)
    command -v mayfly >/dev/null || fail "mayfly is not installed on this image" ;;
  deb)
    fetch "$src" "$tmp/mayfly.deb"
    verify "$tmp/mayfly.deb"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y "$tmp/mayfly.deb" || { apt-get update && apt-get install -y "$tmp/mayfly.deb"; } ||
      fail "apt-get could not install mayfly" ;;
  rpm)
    fetch "$src" "$tmp/mayfly.rpm"
    verify "$tmp/mayfly.rpm"
    if command -v dnf >/dev/null; then dnf install -y "$tmp/mayfly.rpm"; else yum install -y "$tmp/mayfly.rpm"; fi ||
      fail "could not install the rpm" ;;
  binary)
    fetch "$src" "$tmp/mayfly"
    verify "$tmp/mayfly"
    install -m 0755 "$tmp/mayfly" /usr/bin/mayfly
    /usr/bin/mayfly --version >/dev/null || fail "the downloaded mayfly does not run"
    /usr/bin/mayfly install-units >/dev/null || fail "mayfly install-units failed" ;;
esac

if ! id ec2-user >/dev/null 2>&1 && ! id ubuntu >/dev/null 2>&1 && ! id mayfly >/dev/null 2>&1; then
  useradd --system --create-home --home-dir /var/lib/mayfly-home --shell /bin/bash mayfly
fi
systemctl daemon-reload
systemctl enable --now mayfly-backstop.timer
systemctl enable mayfly.service
systemctl start --no-block mayfly.service
trap - EXIT
rm -rf "$tmp"

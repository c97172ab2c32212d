#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Local "fake cloud" for mayfly tests: moto (S3/EC2/IAM/STS) + IMDSv2 fake + control API.

    python3 tests/fakes/cloud.py --state-dir DIR [options]

Everything listens on 127.0.0.1 on OS-chosen ports.  When ready, DIR/cloud.json is
written atomically; the process then runs until SIGTERM/SIGINT.  See
tests/fakes/README.md for the state file and the control API.

Only the Python standard library plus moto, boto3/botocore and werkzeug are used.
"""

from __future__ import annotations

import argparse
import base64
import calendar
import collections
import http.server
import io
import json
import logging
import os
import re
import secrets
import signal
import socket
import struct
import sys
import threading
import time
import traceback
import urllib.parse
import uuid

import instances  # the instance simulator, beside this file (tests/fakes/instances.py)
import placement  # EC2 placement groups, which moto lacks (tests/fakes/placement.py)

LOG = logging.getLogger("fakecloud")

# User-Agent marker for the harness's own boto3 calls (bootstrap, STS AssumeRole):
# such requests bypass fault rules, expiry checks and the request log.
INTERNAL_UA = "mayfly-fakecloud-internal/1"
ACCOUNT_ID = "123456789012"  # moto's default account
ROLE_NAME = "mayfly-instance-role"
MAX_IMDS_TTL = 21600

XHTML_ERROR = """<?xml version="1.0" encoding="iso-8859-1"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
         "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>{code} - {reason}</title>
 </head>
 <body>
  <h1>{code} - {reason}</h1>
 </body>
</html>
"""

REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    412: "Precondition Failed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def parse_iso(s: str) -> float:
    s = s.strip()
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            return float(calendar.timegm(time.strptime(s, fmt)))
        except ValueError:
            pass
    raise ValueError(f"bad ISO-8601 UTC time {s!r} (want YYYY-MM-DDTHH:MM:SSZ)")


def aws_json(obj) -> bytes:
    """Pretty JSON in the style real IMDS uses for credentials / identity document."""
    return json.dumps(obj, indent=2, separators=(",", " : ")).encode()


def compact_json(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def xml_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def error_xml(fmt: str, code: str, message: str, extra: str = "") -> bytes:
    rid = str(uuid.uuid4())
    code, message = xml_escape(code), xml_escape(message)
    if fmt == "ec2":
        body = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>"
            f"</Error></Errors><RequestID>{rid}</RequestID></Response>"
        )
    elif fmt == "query":
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>{rid}</RequestId></ErrorResponse>"
        )
    else:
        host_id = base64.b64encode(secrets.token_bytes(24)).decode()
        body = (
            f"<Error><Code>{code}</Code><Message>{message}</Message>{extra}"
            f"<RequestId>{rid.replace('-', '')[:16].upper()}</RequestId><HostId>{host_id}</HostId></Error>"
        )
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode()


def check_s3_payload(headers, body: bytes) -> tuple[str, str, str] | None:
    """What moto skips: S3 verifies Content-MD5 and a hex x-amz-content-sha256 against the body."""
    import hashlib

    sha = (headers.get("x-amz-content-sha256") or "").strip()
    streaming = sha.startswith("STREAMING-") or "aws-chunked" in (headers.get("Content-Encoding") or "")
    if re.fullmatch(r"[0-9a-fA-F]{64}", sha):
        got = hashlib.sha256(body).hexdigest()
        if got != sha.lower():
            return ("XAmzContentSHA256Mismatch",
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                    f"<ClientComputedContentSHA256>{xml_escape(sha)}</ClientComputedContentSHA256>"
                    f"<S3ComputedContentSHA256>{got}</S3ComputedContentSHA256>")
    bad = check_s3_checksum(headers, body, streaming)
    if bad:
        return bad
    md5 = headers.get("Content-MD5")
    if md5 is not None and not streaming:
        try:
            want = base64.b64decode(md5.strip(), validate=True)
        except ValueError:
            want = b""
        if len(want) != 16:
            return ("InvalidDigest", "The Content-MD5 you specified was invalid.",
                    f"<Content-MD5>{xml_escape(md5)}</Content-MD5>")
        if hashlib.md5(body).digest() != want:
            return ("BadDigest", "The Content-MD5 you specified did not match what we received.",
                    f"<ExpectedDigest>{xml_escape(md5)}</ExpectedDigest>"
                    f"<CalculatedDigest>{base64.b64encode(hashlib.md5(body).digest()).decode()}</CalculatedDigest>")
    return None


_CHECKSUM_ALGS = {"crc32": "CRC32", "crc32c": "CRC32C", "crc64nvme": "CRC64NVME", "sha1": "SHA1", "sha256": "SHA256"}


def crc32_b64(body: bytes) -> str:
    """botocore's own CRC32 checksum class, so the fake and the SDK agree by construction."""
    from botocore.httpchecksum import Crc32Checksum

    c = Crc32Checksum()
    c.update(body)
    return c.b64digest()


def check_s3_checksum(headers, body: bytes, streaming: bool) -> tuple[str, str, str] | None:
    """What moto 5.2.1 skips (a TODO in S3Response._get_checksum): S3 verifies an x-amz-checksum-<alg> header
    against the body, and x-amz-sdk-checksum-algorithm must name a checksum that is there. CRC32 is verified;
    the other algorithms only for their form (their libraries are not all here: moto itself computes CRC32 where
    CRC32C is asked without the crc32c module)."""
    sent = {k.lower()[len("x-amz-checksum-"):]: v for k, v in headers.items()
            if k.lower().startswith("x-amz-checksum-") and k.lower()[len("x-amz-checksum-"):] in _CHECKSUM_ALGS}
    alg = (headers.get("x-amz-sdk-checksum-algorithm") or "").strip()
    if alg and not streaming and alg.lower() not in sent:
        return ("InvalidRequest", "x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* "
                "or x-amz-trailer headers were found.", "")
    if len(sent) > 1:
        return ("InvalidRequest", "Expecting a single x-amz-checksum- header. Multiple checksum Types are not "
                "allowed.", "")
    if "crc32" in sent and not streaming:
        v = sent["crc32"].strip()
        try:
            ok = len(base64.b64decode(v, validate=True)) == 4
        except ValueError:
            ok = False
        if not ok:
            return ("InvalidRequest", "Value for x-amz-checksum-crc32 header is invalid.", "")
        if crc32_b64(body) != v:
            return ("BadDigest", "The CRC32 you specified did not match the calculated checksum.", "")
    return None


def check_complete_checksums(rec: dict, body: bytes) -> tuple[str, str] | None:
    """S3: an upload created with a checksum algorithm completes only with each part's checksum in the XML, the
    one that part was uploaded with."""
    tag = "Checksum" + rec["alg"]
    for m in re.finditer(rb"<Part>(.*?)</Part>", body, re.S):
        pn = re.search(rb"<PartNumber>\s*(\d+)\s*</PartNumber>", m.group(1))
        cv = re.search(rb"<" + tag.encode() + rb">\s*([^<]*?)\s*</" + tag.encode() + rb">", m.group(1))
        n = int(pn.group(1)) if pn else 0
        if not cv:
            return ("InvalidRequest", "The upload was created using a %s checksum. The complete request must include "
                    "the checksum for each part. It was missing for part %d in the request." % (rec["alg"].lower(), n))
        if rec["parts"].get(n) != cv.group(1).decode():
            return ("InvalidPart", "One or more of the specified parts could not be found. The part may not have "
                    "been uploaded, or the specified checksum may not have matched the part's checksum.")
    return None


def fmt_for_service(service: str | None) -> str:
    if service == "ec2":
        return "ec2"
    if service in ("sts", "iam"):
        return "query"
    return "s3"


_SECRET_QUERY = re.compile(r"(?i)(X-Amz-Signature|X-Amz-Security-Token|Signature|SecurityToken)=[^&]*")


def scrub_query(q: str) -> str:
    return _SECRET_QUERY.sub(lambda m: m.group(1) + "=REDACTED", q)


# ----------------------------------------------------------------------------------------
# shared state


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "lock", threading.Lock()):
            self.c = collections.Counter()
            self.imds_paths = collections.Counter()
            self.imds_status = collections.Counter()
            self.moto_status = collections.Counter()
            self.faults_by_kind = collections.Counter()
            self.moto_log = collections.deque(maxlen=200)

    def inc(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.c[key] += n

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "imds_token_puts": self.c["imds_token_puts"],
                "imds_tokens_issued": self.c["imds_tokens_issued"],
                "imds_gets": self.c["imds_gets"],
                "imds_gets_by_path": dict(self.imds_paths),
                "imds_status": dict(sorted(self.imds_status.items())),
                "imds_401": self.imds_status["401"],
                "imds_429": self.imds_status["429"],
                "creds_issued": self.c["creds_issued"],
                "moto_requests": self.c["moto_requests"],
                "moto_bytes_in": self.c["moto_bytes_in"],
                "moto_status": dict(sorted(self.moto_status.items())),
                "expired_rejections": self.c["expired_rejections"],
                "skew_rejections": self.c["skew_rejections"],
                "unauthorized_rewrites": self.c["unauthorized_rewrites"],
                "faults_fired": self.c["faults_fired"],
                "faults_fired_by_kind": dict(self.faults_by_kind),
                "moto_log": list(self.moto_log),
            }


class Cloud:
    """All mutable fake-cloud state; every server thread shares one instance."""

    def __init__(self, args) -> None:
        self.args = args
        self.lock = threading.RLock()
        self.creds_lock = threading.Lock()
        self.stats = Stats()
        self.started = time.time()
        # IMDS state
        self.tokens: dict[str, float] = {}  # token -> expiry (time.monotonic())
        self.imds_enabled = True
        self.imds_failures: list[list[int]] = []  # [status, remaining]
        self.imds_delays: list[list[float]] = []  # [seconds, remaining]
        self.user_data: bytes | None = None
        self.spot: dict | None = None  # {"action":..., "time": epoch}
        self.rebalance: float | None = None  # notice time (epoch)
        # credentials issued through IMDS
        self.creds: list[dict] = []  # in issue order
        self.issued: dict[str, dict] = {}  # akid -> cred
        # moto-side fault rules
        self.fault_rules: list[dict] = []
        # multipart uploads created with x-amz-checksum-algorithm: upload id -> {"alg", "parts": {n: value}}
        self.mpu_checksums: dict[str, dict] = {}
        # filled by bootstrap
        self.region = args.region
        self.endpoint = ""
        self.admin_key = ""
        self.admin_secret = ""
        self.instance: dict = {}
        self.sts = None  # boto3 STS client with admin creds (internal)
        self.sim = None  # the instance simulator (instances.py), with --simulate-instances
        self.placement = placement.PlacementGroups(ACCOUNT_ID, args.region)

    # ---- IMDS tokens ----
    def new_token(self, ttl: int) -> str:
        tok = base64.b64encode(secrets.token_bytes(42)).decode()
        now = time.monotonic()
        with self.lock:
            if len(self.tokens) > 1000:
                self.tokens = {k: v for k, v in self.tokens.items() if v > now}
            self.tokens[tok] = now + ttl
        return tok

    def token_remaining(self, tok: str | None) -> int | None:
        if not tok:
            return None
        with self.lock:
            exp = self.tokens.get(tok)
        if exp is None:
            return None
        rem = exp - time.monotonic()
        if rem <= 0:
            return None
        return max(1, int(rem + 0.999))

    def expire_tokens(self) -> int:
        with self.lock:
            n = len(self.tokens)
            now = time.monotonic()
            for k in self.tokens:
                self.tokens[k] = now
            return n

    def take_imds_failure(self) -> int | None:
        with self.lock:
            while self.imds_failures:
                ent = self.imds_failures[0]
                if ent[1] <= 0:
                    self.imds_failures.pop(0)
                    continue
                ent[1] -= 1
                if ent[1] <= 0:
                    self.imds_failures.pop(0)
                return int(ent[0])
        return None

    def take_imds_delay(self) -> float:
        with self.lock:
            while self.imds_delays:
                ent = self.imds_delays[0]
                if ent[1] <= 0:
                    self.imds_delays.pop(0)
                    continue
                ent[1] -= 1
                if ent[1] <= 0:
                    self.imds_delays.pop(0)
                return float(ent[0])
        return 0.0

    # ---- role credentials ----
    def refresh_before(self) -> float:
        if self.args.cred_refresh_before is not None:
            return float(self.args.cred_refresh_before)
        # Half-life.  AWS promises new credentials "at least five minutes before" expiry; the
        # brief's max(5 min, ttl/2) equals ttl/2 for every ttl >= 600 s, and for short test TTLs
        # (e.g. 20 s -> a new set every ~10 s) ttl/2 is the only workable reading.
        return self.args.cred_ttl / 2.0

    def _issue_creds_locked(self) -> dict:
        resp = self.sts.assume_role(
            RoleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/{ROLE_NAME}",
            RoleSessionName=f"i-session-{len(self.creds) + 1}",
            DurationSeconds=43200,
        )
        c = resp["Credentials"]
        now = time.time()
        cred = {
            "AccessKeyId": c["AccessKeyId"],
            "SecretAccessKey": c["SecretAccessKey"],
            "Token": c["SessionToken"],
            "issued": int(now),
            "expiration": int(now) + int(self.args.cred_ttl),
        }
        with self.lock:
            self.creds.append(cred)
            self.issued[cred["AccessKeyId"]] = cred
        self.stats.inc("creds_issued")
        LOG.info("issued role credentials %s expiring %s", cred["AccessKeyId"], iso(cred["expiration"]))
        return cred

    def current_creds(self, force: bool = False) -> dict:
        with self.creds_lock:
            cur = self.creds[-1] if self.creds else None
            if force or cur is None or cur["expiration"] - time.time() < self.refresh_before():
                cur = self._issue_creds_locked()
            return cur

    def expire_creds(self) -> int:
        now = int(time.time())
        with self.lock:
            for c in self.creds:
                c["expiration"] = min(c["expiration"], now)
            return len(self.creds)

    def is_expired(self, akid: str | None) -> bool:
        if not akid:
            return False
        with self.lock:
            c = self.issued.get(akid)
        return c is not None and time.time() >= c["expiration"]

    # ---- moto-side faults ----
    def add_faults(self, rules: list[dict]) -> list[dict]:
        out = []
        for r in rules:
            if not isinstance(r, dict):
                raise ValueError("each rule must be a JSON object")
            kinds = [k for k in ("status", "truncate", "delay", "reset", "corrupt", "checksum") if k in r]
            if len(kinds) != 1:
                raise ValueError("a rule needs exactly one action: status | truncate | delay | reset | corrupt | "
                                 "checksum")
            rule = dict(r)
            rule["kind"] = kinds[0]
            rule["count"] = int(r.get("count", 1))
            rule["fired"] = 0
            if rule["kind"] == "status":
                rule["status"] = int(r["status"])
            elif rule["kind"] == "truncate":
                rule["truncate"] = int(r["truncate"])
            elif rule["kind"] == "delay":
                rule["delay"] = float(r["delay"])
            elif rule["kind"] == "corrupt":
                rule["corrupt"] = int(r["corrupt"])
            elif rule["kind"] == "checksum":
                rule["checksum"] = str(r["checksum"])
            elif rule["kind"] == "reset":
                if r["reset"] not in (True, "before", "after"):
                    raise ValueError('reset must be true, "before" or "after"')
                rule["reset"] = "after" if r["reset"] == "after" else "before"
            out.append(rule)
        with self.lock:
            self.fault_rules.extend(out)
        return out

    def match_fault(self, method, path, query, service, action, headers=None) -> dict | None:
        dpath = urllib.parse.unquote(path)
        dquery = urllib.parse.unquote(query)
        with self.lock:
            for r in self.fault_rules:
                if r["count"] >= 0 and r["fired"] >= r["count"]:
                    continue
                if r.get("method") and r["method"].upper() != method.upper():
                    continue
                pc = r.get("path_contains")
                if pc and pc not in path and pc not in dpath:
                    continue
                qc = r.get("query_contains")
                if qc and qc not in query and qc not in dquery:
                    continue
                if r.get("service") and r["service"] != service:
                    continue
                if r.get("action") and r["action"] != action:
                    continue
                if r.get("header") and (headers is None or headers.get(r["header"]) is None):
                    continue
                if r.get("after", 0) > r.setdefault("passed", 0):
                    r["passed"] += 1  # the first `after` matching requests go through
                    continue
                r["fired"] += 1
                self.stats.inc("faults_fired")
                with self.stats.lock:
                    self.stats.faults_by_kind[r["kind"]] += 1
                return dict(r)
        return None

    # ---- IMDS content ----
    def imds_tree(self) -> dict:
        inst = self.instance
        region = self.region
        az = inst["az"]
        now = time.time()
        md: dict = {
            "ami-id": inst["ami_id"],
            "ami-launch-index": "0",
            "ami-manifest-path": "(unknown)",
            "block-device-mapping": {"ami": "/dev/sda1", "root": "/dev/sda1"},
            "events": {"maintenance": {"history": "[]", "scheduled": "[]"}},
            "hostname": inst["hostname"],
            "iam": {
                "info": lambda: aws_json(
                    {
                        "Code": "Success",
                        "LastUpdated": iso(self.started),
                        "InstanceProfileArn": inst["profile_arn"],
                        "InstanceProfileId": inst["profile_id"],
                    }
                ),
                "security-credentials": {ROLE_NAME: self._creds_doc},
            },
            "instance-action": "none",
            "instance-id": inst["instance_id"],
            "instance-life-cycle": self.args.lifecycle,
            "instance-type": inst["instance_type"],
            "local-hostname": inst["hostname"],
            "local-ipv4": inst["private_ip"],
            "mac": inst["mac"],
            "placement": {
                "availability-zone": az,
                "availability-zone-id": "use1-az1" if region == "us-east-1" else region[:2] + "1-az1",
                "region": region,
            },
            "reservation-id": inst["reservation_id"],
            "security-groups": "default",
            "services": {"domain": "amazonaws.com", "partition": "aws"},
        }
        if self.rebalance is not None and now >= self.rebalance:
            md["events"]["recommendations"] = {
                "rebalance": compact_json({"noticeTime": iso(self.rebalance)})
            }
        spot = self.spot
        if spot is not None:
            md["spot"] = {
                "instance-action": compact_json({"action": spot["action"], "time": iso(spot["time"])}),
                "termination-time": iso(spot["time"]).encode(),
            }
        ident = {
            "accountId": ACCOUNT_ID,
            "architecture": "x86_64",
            "availabilityZone": az,
            "billingProducts": None,
            "devpayProductCodes": None,
            "marketplaceProductCodes": None,
            "imageId": inst["ami_id"],
            "instanceId": inst["instance_id"],
            "instanceType": inst["instance_type"],
            "kernelId": None,
            "pendingTime": inst["pending_time"],
            "privateIp": inst["private_ip"],
            "ramdiskId": None,
            "region": region,
            "version": "2017-09-30",
        }
        return {
            "dynamic": {"instance-identity": {"document": aws_json(ident)}},
            "meta-data": md,
            "user-data": lambda: self.user_data,
        }

    def _creds_doc(self) -> bytes:
        c = self.current_creds()
        return aws_json(
            {
                "Code": "Success",
                "LastUpdated": iso(c["issued"]),
                "Type": "AWS-HMAC",
                "AccessKeyId": c["AccessKeyId"],
                "SecretAccessKey": c["SecretAccessKey"],
                "Token": c["Token"],
                "Expiration": iso(c["expiration"]),
            }
        )

    def imds_resolve(self, path: str) -> tuple[int, str, bytes]:
        parts = [p for p in path.split("/") if p]
        if not parts:
            return 200, "text/plain", b"1.0\n2007-01-19\n2021-03-23\nlatest"
        version = parts[0]
        if version != "latest" and not re.fullmatch(r"\d{4}-\d{2}-\d{2}|1\.0", version):
            return 404, "", b""
        node = self.imds_tree()
        for p in parts[1:]:
            if not isinstance(node, dict) or p not in node:
                return 404, "", b""
            node = node[p]
        if isinstance(node, dict):
            names = []
            for k in sorted(node):
                v = node[k]
                if isinstance(v, dict):
                    if v:
                        names.append(k + "/")
                else:
                    names.append(k)
            if not names:
                return 404, "", b""
            return 200, "text/plain", "\n".join(names).encode()
        if callable(node):
            node = node()
        if node is None:
            return 404, "", b""
        if isinstance(node, str):
            node = node.encode()
        ctype = "application/octet-stream" if parts[1:] == ["user-data"] else "text/plain"
        return 200, ctype, node

    def state(self) -> dict:
        now = time.time()
        with self.lock:
            return {
                "imds_enabled": self.imds_enabled,
                "imds_failures_pending": [list(x) for x in self.imds_failures],
                "imds_delays_pending": [list(x) for x in self.imds_delays],
                "tokens_live": sum(1 for v in self.tokens.values() if v > time.monotonic()),
                "user_data_bytes": None if self.user_data is None else len(self.user_data),
                "spot": None if self.spot is None else {"action": self.spot["action"], "time": iso(self.spot["time"])},
                "rebalance": None if self.rebalance is None else iso(self.rebalance),
                "creds": [
                    {
                        "AccessKeyId": c["AccessKeyId"],
                        "issued": iso(c["issued"]),
                        "Expiration": iso(c["expiration"]),
                        "expired": now >= c["expiration"],
                    }
                    for c in self.creds
                ],
                "fault_rules": [dict(r) for r in self.fault_rules],
                "instance": dict(self.instance),
            }


# ----------------------------------------------------------------------------------------
# IMDS server


class IMDSHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server_version = "EC2ws"
    timeout = 60

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format, *args):  # noqa: A002
        LOG.debug("imds %s - " + format, self.client_address[0], *args)

    def _drain(self) -> None:
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            self.close_connection = True
            return
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            return
        if n > 0:
            self.rfile.read(n)

    def _send(self, code: int, body: bytes, ctype: str = "text/plain", extra: dict | None = None) -> None:
        cloud: Cloud = self.server.cloud
        with cloud.stats.lock:
            cloud.stats.imds_status[str(code)] += 1
        self.send_response(code, REASONS.get(code))
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, code: int) -> None:
        body = XHTML_ERROR.format(code=code, reason=REASONS.get(code, "Error")).encode()
        self._send(code, body, "text/html")

    def _handle(self) -> None:
        cloud: Cloud = self.server.cloud
        self._drain()
        path = urllib.parse.urlsplit(self.path).path
        method = self.command
        if method in ("GET", "HEAD"):
            cloud.stats.inc("imds_gets")
            with cloud.stats.lock:
                cloud.stats.imds_paths[path] += 1
        is_token_path = method == "PUT" and re.fullmatch(r"/[^/]+/api/token/?", path) is not None
        if is_token_path:
            cloud.stats.inc("imds_token_puts")
        if not cloud.imds_enabled:
            return self._error(403)
        d = cloud.take_imds_delay()
        if d > 0:
            time.sleep(d)
        f = cloud.take_imds_failure()
        if f:
            return self._error(f)
        if method == "PUT":
            if not is_token_path:
                return self._error(405)
            if "X-Forwarded-For" in self.headers:
                return self._error(403)
            if path.rstrip("/") != "/latest/api/token":
                return self._error(403)
            raw = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            if raw is None or not raw.strip().isdigit():
                return self._error(400)
            ttl = int(raw.strip())
            if ttl < 1 or ttl > MAX_IMDS_TTL:
                return self._error(400)
            tok = cloud.new_token(ttl)
            cloud.stats.inc("imds_tokens_issued")
            return self._send(200, tok.encode(), extra={"X-aws-ec2-metadata-token-ttl-seconds": ttl})
        if method not in ("GET", "HEAD"):
            return self._error(405)
        rem = cloud.token_remaining(self.headers.get("X-aws-ec2-metadata-token"))
        if rem is None:
            return self._error(401)
        if re.fullmatch(r"/[^/]+/api/token/?", path):
            return self._error(405)
        try:
            code, ctype, body = cloud.imds_resolve(path)
        except Exception:  # e.g. STS failure while issuing credentials
            LOG.error("imds %s failed:\n%s", path, traceback.format_exc())
            return self._error(500)
        if code != 200:
            return self._error(code)
        self._send(200, body, ctype, {"X-aws-ec2-metadata-token-ttl-seconds": rem})

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = _handle


# ----------------------------------------------------------------------------------------
# moto front end (WSGI server with fault injection and expiry enforcement)

_CRED_RE = re.compile(r"Credential=([^/,\s]+)/[^/,\s]*/([^/,\s]*)/([^/,\s]+)/")


def make_moto_handler():
    from werkzeug.serving import WSGIRequestHandler

    class MotoHandler(WSGIRequestHandler):
        timeout = 300
        disable_nagle_algorithm = True

        def log_request(self, code="-", size="-"):
            pass

        def log_message(self, format, *args):  # noqa: A002
            LOG.debug("moto-http " + format, *args)

        def _read_body(self) -> bytes | None:
            te = self.headers.get("Transfer-Encoding", "")
            if "chunked" in te.lower():
                out = bytearray()
                while True:
                    line = self.rfile.readline(65537)
                    if not line:
                        return None
                    size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while True:  # trailers
                            t = self.rfile.readline(65537)
                            if not t or t in (b"\r\n", b"\n"):
                                break
                        return bytes(out)
                    out += self.rfile.read(size)
                    self.rfile.readline(3)
            cl = self.headers.get("Content-Length")
            if not cl:
                return b""
            n = int(cl)
            data = self.rfile.read(n) if n > 0 else b""
            return data if len(data) == n else None

        def _abort(self, rst: bool) -> None:
            self.close_connection = True
            sock = self.connection
            try:
                self.wfile.flush()
            except Exception:
                pass
            try:
                if rst:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
                self.rfile.close()  # drops the makefile() reference so the fd really closes
            except OSError:
                pass

        def _write(self, status: str, headers: list, body: bytes, limit: int | None = None) -> None:
            code_s, _, reason = status.partition(" ")
            code = int(code_s)
            self.send_response_only(code, reason or None)
            have = {k.lower() for k, _ in headers}
            if "date" not in have:
                self.send_header("Date", self.date_time_string())
            if "server" not in have:
                self.send_header("Server", "AmazonS3")
            for k, v in headers:
                if k.lower() in ("connection", "transfer-encoding", "content-length", "keep-alive"):
                    continue
                self.send_header(k, v)
            if self.command == "HEAD" or code in (204, 304) or 100 <= code < 200:
                cl = next((v for k, v in headers if k.lower() == "content-length"), None)
                if cl is not None and self.command == "HEAD":
                    self.send_header("Content-Length", cl)
                body = b""
            else:
                self.send_header("Content-Length", str(len(body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if limit is not None:
                body = body[:limit]
            if body:
                self.wfile.write(body)
            self.wfile.flush()

        def run_wsgi(self) -> None:  # one request (werkzeug calls this for every method)
            cloud: Cloud = self.server.cloud
            method = self.command
            raw_path, _, query = self.path.partition("?")
            if "://" in raw_path:
                raw_path = "/" + raw_path.split("://", 1)[1].partition("/")[2]
            internal = INTERNAL_UA in self.headers.get("User-Agent", "")
            try:
                body = self._read_body()
            except (ValueError, OSError):
                body = None
            if body is None:
                self.close_connection = True
                self._write("400 Bad Request", [("Content-Type", "application/xml")],
                            error_xml("s3", "IncompleteBody", "Could not read the request body."))
                return
            akid = service = region = None
            m = _CRED_RE.search(self.headers.get("Authorization", ""))
            if m:
                akid, region, service = m.group(1), m.group(2), m.group(3)
            else:
                qs = urllib.parse.parse_qs(query)
                cred = (qs.get("X-Amz-Credential") or [""])[0].split("/")
                if len(cred) >= 4:
                    akid, service = cred[0], cred[3]
            action = None
            params = urllib.parse.parse_qs(query)
            if "x-www-form-urlencoded" in self.headers.get("Content-Type", "") and body:
                try:
                    params.update(urllib.parse.parse_qs(body.decode("utf-8", "replace")))
                except Exception:
                    pass
            if params.get("Action"):
                action = params["Action"][0]
            entry = {
                "t": iso(time.time()),
                "ts": round(time.time(), 3),
                "method": method,
                "path": raw_path,
                "query": scrub_query(query),
                "service": service,
                "region": region,
                "action": action,
                "access_key_id": akid,
                "status": None,
                "bytes": len(body),
            }
            fmt = fmt_for_service(service)

            def finish(status_code, fault=None, note=None):
                if internal:
                    return
                entry["status"] = status_code
                if fault:
                    entry["fault"] = fault
                if note:
                    entry["note"] = note
                cloud.stats.inc("moto_requests")
                cloud.stats.inc("moto_bytes_in", entry["bytes"])
                with cloud.stats.lock:
                    cloud.stats.moto_status[str(status_code)] += 1
                    cloud.stats.moto_log.append(entry)
                LOG.info("moto %s %s%s -> %s %s%s", method, raw_path, "?" + entry["query"] if query else "",
                         status_code, akid or "-", f" fault={fault}" if fault else "")

            rule = None if internal else cloud.match_fault(method, raw_path, query, service, action,
                                                                  self.headers)
            truncate = None
            if rule:
                kind = rule["kind"]
                if kind == "reset" and rule["reset"] != "after":
                    finish("reset", "reset")
                    self._abort(rst=True)
                    return
                if kind == "status":
                    st = rule["status"]
                    code = rule.get("code") or {503: "SlowDown", 500: "InternalError"}.get(st, "ServiceUnavailable")
                    msg = rule.get("message") or {"SlowDown": "Please reduce your request rate."}.get(
                        code, "We encountered an internal error. Please try again.")
                    xml = error_xml(rule.get("format") or fmt, code, msg)
                    finish(st, f"status:{st}")
                    self._write(f"{st} {REASONS.get(st, 'Error')}", [("Content-Type", "application/xml")], xml)
                    return
                if kind == "delay":
                    time.sleep(rule["delay"])
                if kind == "truncate":
                    truncate = rule

            # AWS refuses a request signed more than 15 minutes away from its own clock
            amzdate = self.headers.get("X-Amz-Date") or (urllib.parse.parse_qs(query).get("X-Amz-Date") or [None])[0]
            if not internal and amzdate and not cloud.args.no_skew_check:
                try:
                    signed = calendar.timegm(time.strptime(amzdate, "%Y%m%dT%H%M%SZ"))
                except ValueError:
                    signed = None
                if signed is not None and abs(signed - time.time()) > 900:
                    cloud.stats.inc("skew_rejections")
                    if fmt == "s3":
                        code, status, msg = "RequestTimeTooSkewed", 403, \
                            "The difference between the request time and the current time is too large."
                    else:
                        code, status, msg = "RequestExpired", 400, "Request has expired."
                    finish(status, note=code)
                    self._write("%d %s" % (status, REASONS.get(status, "Error")),
                                [("Content-Type", "application/xml")], error_xml(fmt, code, msg))
                    return

            if not internal and cloud.is_expired(akid):
                cloud.stats.inc("expired_rejections")
                finish(400, note="ExpiredToken")
                self._write("400 Bad Request", [("Content-Type", "application/xml")],
                            error_xml(fmt, "ExpiredToken", "The provided token has expired."))
                return

            if cloud.args.auth and not internal and not m:
                qkeys = {k.lower() for k in urllib.parse.parse_qs(query, keep_blank_values=True)}
                if qkeys & {"x-amz-credential", "awsaccesskeyid", "x-amz-signature", "signature"}:
                    # moto's checker only reads the Authorization header and answers presigned
                    # URLs with a 500 (KeyError); say so instead.
                    finish(501, note="presigned-unsupported")
                    self._write("501 Not Implemented", [("Content-Type", "application/xml")],
                                error_xml(fmt, "NotImplemented",
                                          "fakecloud: moto cannot verify query-string (presigned) "
                                          "signatures; start the fake cloud with --no-auth"))
                    return
                if "Authorization" not in self.headers:
                    # unsigned: moto would route it to S3 and answer 403 with no body (S3) or 500
                    # (anything else).  Answer like AWS does.
                    finish(403, note="unsigned")
                    if action:
                        xml = error_xml("ec2" if params.get("Version") == ["2016-11-15"] else "query",
                                        "MissingAuthenticationToken", "Request is missing Authentication Token")
                    else:
                        xml = error_xml("s3", "AccessDenied", "Access Denied")
                    self._write("403 Forbidden", [("Content-Type", "application/xml")], xml)
                    return

            if not internal and cloud.args.payload_checks and (service == "s3" or (not service and not action)):
                bad = check_s3_payload(self.headers, body)
                if bad:
                    finish(400, note=bad[0])
                    self._write("400 Bad Request", [("Content-Type", "application/xml")],
                                error_xml("s3", bad[0], bad[1], bad[2]))
                    return

            if (not internal and not cloud.args.allow_chunked and service == "s3"
                    and "chunked" in self.headers.get("Transfer-Encoding", "").lower()):
                finish(501, note="chunked")
                self._write("501 Not Implemented", [("Content-Type", "application/xml")],
                            error_xml("s3", "NotImplemented",
                                      "A header you provided implies functionality that is not implemented"))
                return

            mpu_q = urllib.parse.parse_qs(query, keep_blank_values=True)
            upload_id = (mpu_q.get("uploadId") or [None])[0]
            if (not internal and service == "s3" and method == "POST" and upload_id
                    and upload_id in cloud.mpu_checksums):
                bad = check_complete_checksums(cloud.mpu_checksums[upload_id], body)
                if bad:
                    finish(400, note=bad[0])
                    self._write("400 Bad Request", [("Content-Type", "application/xml")],
                                error_xml("s3", bad[0], bad[1]))
                    return

            denied = (service == "ec2" and action in ("TerminateInstances", "StopInstances")
                      and cloud.args.role_deny_terminate and not cloud.args.auth and akid in cloud.issued)
            if denied:  # no-auth mode: moto evaluates no policies, so enforce the role's deny here
                cloud.stats.inc("unauthorized_rewrites")
                finish(403, note="UnauthorizedOperation")
                self._write("403 Forbidden", [("Content-Type", "text/xml;charset=UTF-8")],
                            error_xml("ec2", "UnauthorizedOperation",
                                      "You are not authorized to perform this operation."))
                return

            environ = self.make_environ()
            environ["wsgi.input"] = io.BytesIO(body)
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                environ["wsgi.input_terminated"] = True
            captured: dict = {}
            chunks: list[bytes] = []

            def start_response(status, headers, exc_info=None):
                captured["status"] = status
                captured["headers"] = list(headers)
                return chunks.append

            _RAW_REQUEST.target = self.path
            try:
                it = self.server.app(environ, start_response)
                try:
                    for c in it:
                        chunks.append(c)
                finally:
                    if hasattr(it, "close"):
                        it.close()
                status, headers, rbody = captured["status"], captured["headers"], b"".join(chunks)
            except Exception:
                LOG.error("moto raised on %s %s:\n%s", method, self.path, traceback.format_exc())
                status, headers = "500 Internal Server Error", [("Content-Type", "application/xml")]
                rbody = error_xml(fmt, "InternalError", "moto raised an exception (see cloud.log)")
            finally:
                _RAW_REQUEST.target = None

            code = int(status.split(" ", 1)[0])
            note = None
            # moto 5.2.1 has no placement groups: once it has checked the signature and the policy (it does that
            # before it finds no such action, and answers 500), placement.py answers as EC2 does
            if service == "ec2" and action in placement.ACTIONS and code == 500:
                code, rbody = cloud.placement.answer(action, params)
                status = "%d %s" % (code, REASONS.get(code, "Error"))
                headers = [("Content-Type", "text/xml;charset=UTF-8")]
                note = "placement-group"
            if service == "ec2" and action == "CreateLaunchTemplate" and code == 200:
                cloud.placement.learn_template(params, rbody)
            if not internal and service == "s3" and 200 <= code < 300:
                alg = self.headers.get("x-amz-checksum-algorithm")
                if method == "POST" and "uploads" in mpu_q and alg:
                    m3 = re.search(rb"<UploadId>([^<]+)</UploadId>", rbody)
                    if m3:
                        cloud.mpu_checksums[m3.group(1).decode()] = {"alg": alg.upper(), "parts": {}}
                elif method == "PUT" and upload_id in cloud.mpu_checksums and mpu_q.get("partNumber"):
                    rec = cloud.mpu_checksums[upload_id]
                    rec["parts"][int(mpu_q["partNumber"][0])] = self.headers.get(
                        "x-amz-checksum-" + rec["alg"].lower())
            # moto's GetConsoleOutput is canned: a simulated instance's console is what its boot and its agent
            # printed (cloud-init's log, the agent's stderr), as EC2 gives the serial console's last 64 KiB
            if (service == "ec2" and action == "GetConsoleOutput" and code == 200 and cloud.sim is not None):
                text = cloud.sim.console_of((params.get("InstanceId") or [""])[0])
                if text is not None:
                    enc = base64.b64encode(text[-65536:]).decode()
                    rbody = re.sub(rb"<output>.*?</output>", ("<output>%s</output>" % enc).encode(), rbody, flags=re.S)
                    if b"<output>" not in rbody:
                        rbody = rbody.replace(b"</instanceId>", ("</instanceId><output>%s</output>" % enc).encode(), 1)
                    note = "console"
            # moto's DescribeScalingActivities answers an empty list: the simulator's group activities take its place
            # (each launch and termination of a member, a launch that failed for capacity with EC2's message)
            if (service == "autoscaling" and action == "DescribeScalingActivities" and code == 200
                    and cloud.sim is not None):
                try:
                    most = max(1, min(100, int((params.get("MaxRecords") or ["100"])[0])))
                except ValueError:
                    most = 100
                rbody = cloud.sim.activities_xml((params.get("AutoScalingGroupName") or [""])[0], most)
                note = "activities"
            # moto answers a policy denial on EC2 with <ErrorResponse>...AccessDenied; real EC2 says
            # 403 UnauthorizedOperation in <Response><Errors>.
            if service == "ec2" and code == 403 and b"<Code>AccessDenied</Code>" in rbody:
                cloud.stats.inc("unauthorized_rewrites")
                m2 = re.search(rb"<Message>(.*?)</Message>", rbody, re.S)
                detail = m2.group(1).decode("utf-8", "replace") if m2 else ""
                rbody = error_xml("ec2", "UnauthorizedOperation",
                                  "You are not authorized to perform this operation. " + detail)
                headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
                headers.append(("Content-Type", "text/xml;charset=UTF-8"))
                note = "UnauthorizedOperation"
            # moto evaluates bucket policies only in part: a Deny of s3:GetObject gets a 403 without a body on GET
            # (S3 sends AccessDenied) and none on HEAD (moto asks about "s3:HeadObject", which is no IAM action).
            # Apply the Deny to both reads once moto has authenticated the request (a bad signature stays
            # SignatureDoesNotMatch, as on AWS).
            if (not internal and cloud.args.auth and service == "s3" and method in ("GET", "HEAD")
                    and (200 <= code < 300 or (code == 403 and not rbody))
                    and bucket_policy_denies(raw_path, query, akid)):
                status, rbody, code, note = "403 Forbidden", error_xml("s3", "AccessDenied", "Access Denied"), 403, \
                    "bucket-policy"
                headers = [("Content-Type", "application/xml")]
            if rule and rule["kind"] == "reset":  # "reset": "after" -- moto did the work, answer lost
                finish(code, "reset-after", note)
                self._abort(rst=True)
                return
            if truncate is not None:
                finish(code, f"truncate:{truncate['truncate']}", note)
                try:  # real headers (no "Connection: close" unless the client asked), short body
                    self._write(status, headers, rbody, limit=truncate["truncate"])
                finally:
                    self._abort(rst=bool(truncate.get("rst")))
                return
            if rule and rule["kind"] == "corrupt" and 200 <= code < 300 and rbody:
                # one bit flipped at that offset of the body (clamped): bytes damaged in flight, headers intact
                i = min(max(rule["corrupt"], 0), len(rbody) - 1)
                rbody = rbody[:i] + bytes([rbody[i] ^ 0x01]) + rbody[i + 1:]
                finish(code, "corrupt:%d" % i, note)
                self._write(status, headers, rbody)
                return
            if rule and rule["kind"] == "checksum" and 200 <= code < 300:
                # the checksum header S3 answers with (x-amz-checksum-mode) replaced by the rule's value
                headers = [(k, v) for k, v in headers if not k.lower().startswith("x-amz-checksum-crc32")]
                headers.append(("x-amz-checksum-crc32", rule["checksum"]))
                finish(code, "checksum", note)
                self._write(status, headers, rbody)
                return
            finish(code, "delay" if rule and rule["kind"] == "delay" else None, note)
            self._write(status, headers, rbody)

    return MotoHandler


def documented_role_statements() -> list[dict]:
    """The instance role's policy as docs/iam.md gives it (its first JSON block under "## Instance role"), so that a
    permission the agent needs and the document forgets fails here. moto checks a role's actions, but not resource
    ARNs for every service nor conditions: each statement's Resource becomes "*" and its Condition goes."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs",
                        "iam.md")
    with open(path) as f:
        text = f.read()
    section = text[text.index("## Instance role"):]
    block = section[section.index("```json") + len("```json"):]
    doc = json.loads(block[:block.index("```")])
    out = []
    for st in doc["Statement"]:
        st = {k: v for k, v in st.items() if k not in ("Condition", "Sid")}
        st["Resource"] = "*"
        out.append(st)
    return out


def _policy_list(v):
    return v if isinstance(v, list) else [v] if v is not None else []


def _caller_arn(akid):
    """The IAM user ARN of an access key id (None for keys of no IAM user, such as assumed-role keys)."""
    from moto.iam.models import iam_backends
    for user in iam_backends[ACCOUNT_ID]["global"].users.values():
        if any(k.access_key_id == akid for k in user.access_keys):
            return user.arn
    return None


def bucket_policy_denies(raw_path, query, akid) -> bool:
    """Whether a Deny statement of the bucket's policy matches s3:GetObject on this path-style object path.
    Statements with a Condition are not evaluated (skipped); Principal "*", {"AWS": "*"} and IAM user ARNs are."""
    import fnmatch
    from moto.s3.models import s3_backends
    bucket, _, key = urllib.parse.unquote(raw_path).lstrip("/").partition("/")
    if not key or query:
        return False
    b = s3_backends[ACCOUNT_ID]["aws"].buckets.get(bucket)
    if b is None or not b.policy:
        return False
    doc = json.loads(b.policy.decode() if isinstance(b.policy, bytes) else b.policy)
    resource = f"arn:aws:s3:::{bucket}/{key}"
    for st in _policy_list(doc.get("Statement")):
        if st.get("Effect") != "Deny" or "Condition" in st:
            continue
        pr = st.get("Principal")
        who = pr.get("AWS") if isinstance(pr, dict) else pr
        if "*" not in _policy_list(who) and _caller_arn(akid) not in _policy_list(who):
            continue
        if not any(fnmatch.fnmatchcase("s3:getobject", a.lower()) for a in _policy_list(st.get("Action"))):
            continue
        if any(fnmatch.fnmatchcase(resource, r) for r in _policy_list(st.get("Resource"))):
            return True
    return False


# ----------------------------------------------------------------------------------------
# control API


class ControlHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "fakecloud-control"
    timeout = 60

    def log_message(self, format, *args):  # noqa: A002
        LOG.debug("control " + format, *args)

    def _reply(self, code: int, obj) -> None:
        body = (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        cloud: Cloud = self.server.cloud
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n > 0 else b""
        path = urllib.parse.urlsplit(self.path).path.rstrip("/") or "/"
        key = (self.command, path)
        try:
            body = None
            if raw and path != "/user-data":
                body = json.loads(raw.decode())
            code, obj = self._route(cloud, key, raw, body if body is not None else {})
        except (ValueError, KeyError, TypeError) as e:
            code, obj = 400, {"error": f"{type(e).__name__}: {e}"}
        except Exception as e:  # noqa: BLE001
            LOG.error("control %s failed:\n%s", key, traceback.format_exc())
            code, obj = 500, {"error": f"{type(e).__name__}: {e}"}
        LOG.info("control %s %s -> %s", self.command, path, code)
        self._reply(code, obj)

    def _route(self, cloud: Cloud, key, raw: bytes, body):
        now = time.time()
        if key == ("GET", "/health"):
            return 200, {"ok": True}
        if key == ("GET", "/stats"):
            return 200, cloud.stats.snapshot()
        if key == ("POST", "/stats/reset"):
            cloud.stats.reset()
            return 200, {"ok": True}
        if key == ("GET", "/state"):
            return 200, cloud.state()
        # user-data
        if key in (("PUT", "/user-data"), ("POST", "/user-data")):
            cloud.user_data = raw
            return 200, {"ok": True, "bytes": len(raw)}
        if key == ("DELETE", "/user-data"):
            cloud.user_data = None
            return 200, {"ok": True}
        # IMDS switches
        if key == ("POST", "/imds/disable"):
            cloud.imds_enabled = False
            return 200, {"ok": True}
        if key == ("POST", "/imds/enable"):
            cloud.imds_enabled = True
            return 200, {"ok": True}
        if key == ("POST", "/imds/fail"):
            st = int(body.get("status", 429))
            cnt = int(body.get("count", 1))
            with cloud.lock:
                cloud.imds_failures.append([st, cnt])
            return 200, {"ok": True, "status": st, "count": cnt}
        if key == ("POST", "/imds/delay"):
            sec = float(body["seconds"])
            cnt = int(body.get("count", 1))
            with cloud.lock:
                cloud.imds_delays.append([sec, cnt])
            return 200, {"ok": True, "seconds": sec, "count": cnt}
        if key == ("DELETE", "/imds/fail"):
            with cloud.lock:
                cloud.imds_failures.clear()
                cloud.imds_delays.clear()
            return 200, {"ok": True}
        if key == ("POST", "/imds/expire-tokens"):
            return 200, {"ok": True, "expired": cloud.expire_tokens()}
        # spot / rebalance
        if key == ("POST", "/instance/replace"):
            # what a replacement looks like from inside: a new instance in moto (same AMI, type, zone and role), and
            # IMDS speaks for it from now on; no notice pending (the VM scenarios' second boot)
            import boto3
            inst = cloud.instance
            ec2 = boto3.client("ec2", endpoint_url=cloud.endpoint, region_name=cloud.region,
                               aws_access_key_id=cloud.admin_key, aws_secret_access_key=cloud.admin_secret)
            got = ec2.run_instances(ImageId=inst["ami_id"], InstanceType=inst["instance_type"], MinCount=1,
                                    MaxCount=1, Placement={"AvailabilityZone": inst["az"]},
                                    IamInstanceProfile={"Arn": inst["profile_arn"]})
            i = got["Instances"][0]
            ip = i.get("PrivateIpAddress") or inst["private_ip"]
            with cloud.lock:
                inst.update({"instance_id": i["InstanceId"], "private_ip": ip,
                             "hostname": i.get("PrivateDnsName") or f"ip-{ip.replace('.', '-')}.ec2.internal",
                             "mac": (i.get("NetworkInterfaces") or [{}])[0].get("MacAddress") or inst["mac"],
                             "reservation_id": got.get("ReservationId", inst["reservation_id"]),
                             "pending_time": iso(now)})
                cloud.spot = None
                cloud.rebalance = None
            LOG.info("control: IMDS now speaks for %s", i["InstanceId"])
            return 200, {"ok": True, "instance_id": i["InstanceId"]}
        if key == ("POST", "/spot"):
            action = body.get("action", "terminate")
            if action not in ("terminate", "stop", "hibernate"):
                raise ValueError("action must be terminate|stop|hibernate")
            t = parse_iso(body["time"]) if body.get("time") else now + float(body.get("in", 120))
            cloud.spot = {"action": action, "time": int(t)}
            return 200, {"ok": True, "action": action, "time": iso(int(t))}
        if key == ("DELETE", "/spot"):
            cloud.spot = None
            return 200, {"ok": True}
        if key == ("POST", "/rebalance"):
            t = parse_iso(body["time"]) if body.get("time") else now + float(body.get("in", 0))
            cloud.rebalance = int(t)
            return 200, {"ok": True, "noticeTime": iso(int(t))}
        if key == ("DELETE", "/rebalance"):
            cloud.rebalance = None
            return 200, {"ok": True}
        # credentials
        if key == ("GET", "/creds"):
            return 200, {"creds": cloud.state()["creds"]}
        if key == ("POST", "/creds/rotate"):
            c = cloud.current_creds(force=True)
            return 200, {"ok": True, "AccessKeyId": c["AccessKeyId"], "Expiration": iso(c["expiration"])}
        if key == ("POST", "/creds/expire"):
            return 200, {"ok": True, "expired": cloud.expire_creds()}
        # moto-side faults
        if key == ("GET", "/faults"):
            with cloud.lock:
                return 200, {"rules": [dict(r) for r in cloud.fault_rules]}
        if key == ("POST", "/faults"):
            rules = body if isinstance(body, list) else body.get("rules", [body]) if isinstance(body, dict) else None
            if not rules:
                raise ValueError("body must be a rule object, a list of rules, or {\"rules\": [...]}")
            added = cloud.add_faults(rules)
            return 200, {"ok": True, "added": added}
        if key == ("DELETE", "/faults"):
            with cloud.lock:
                n = len(cloud.fault_rules)
                cloud.fault_rules.clear()
            return 200, {"ok": True, "cleared": n}
        # the instance simulator (tests/fakes/instances.py)
        if cloud.sim is not None and key[1].split("/")[1] in ("instances", "sim"):
            return cloud.sim.route(key[0], key[1], body)
        return 404, {"error": f"no route {key[0]} {key[1]}"}

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = _handle


class QuietThreadingHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        LOG.debug("connection error from %s:\n%s", client_address, traceback.format_exc())


# ----------------------------------------------------------------------------------------
# bootstrap


def bootstrap(cloud: Cloud, args) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    ep = cloud.endpoint
    region = args.region
    cfg = Config(user_agent_extra=INTERNAL_UA, retries={"max_attempts": 1, "mode": "standard"},
                 connect_timeout=5, read_timeout=60, s3={"addressing_style": "path"})

    def client(svc, key, secret):
        return boto3.client(svc, endpoint_url=ep, region_name=region, aws_access_key_id=key,
                            aws_secret_access_key=secret, config=cfg)

    # Phase 1: the first few unauthenticated calls (moto counts them; INITIAL_NO_AUTH_ACTION_COUNT)
    # create the admin user.  Requests still need a SigV4 Authorization header so that moto can
    # route them to IAM (unsigned requests fall through to S3), but no key is checked yet.
    boot = client("iam", "AKIAFAKEBOOTSTRAP000", "bootstrap")
    boot.create_user(UserName="admin")
    key = boot.create_access_key(UserName="admin")["AccessKey"]
    pol = boot.create_policy(
        PolicyName="admin-all",
        PolicyDocument=json.dumps({"Version": "2012-10-17",
                                   "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
    )["Policy"]
    boot.attach_user_policy(UserName="admin", PolicyArn=pol["Arn"])
    cloud.admin_key, cloud.admin_secret = key["AccessKeyId"], key["SecretAccessKey"]
    if args.auth:
        # From now on every request must be signed by a known key.
        settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
        ActionAuthenticatorMixin.request_count = 0

    # Phase 2: everything else with the admin key.
    iam = client("iam", cloud.admin_key, cloud.admin_secret)
    # One statement on purpose: moto's trust-policy check crashes (TypeError -> 500) on a
    # statement whose Principal has no "AWS" key, and it does not expand ":root".
    # "AWS": "*": the role trusts itself (the agent assumes it, narrowed, for the experiment: docs/iam.md), and moto
    # compares a trusted role's ARN with the caller's session ARN (assumed-role/NAME/SESSION) literally, so no
    # narrower principal matches the instance's sessions.
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole",
         "Principal": {"Service": "ec2.amazonaws.com", "AWS": "*"}},
    ]}
    iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust), MaxSessionDuration=43200)
    stmts = documented_role_statements()
    if args.role_deny_terminate:
        stmts.append({"Effect": "Deny", "Action": ["ec2:TerminateInstances", "ec2:StopInstances"],
                      "Resource": "*"})
    iam.put_role_policy(RoleName=ROLE_NAME, PolicyName="mayfly-instance-policy",
                        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": stmts}))
    prof = iam.create_instance_profile(InstanceProfileName=ROLE_NAME)["InstanceProfile"]
    iam.add_role_to_instance_profile(InstanceProfileName=ROLE_NAME, RoleName=ROLE_NAME)

    s3 = client("s3", cloud.admin_key, cloud.admin_secret)
    for b in cloud.buckets:
        kw = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=b, **kw)

    ec2 = client("ec2", cloud.admin_key, cloud.admin_secret)
    ami = args.ami
    if not ami:
        imgs = ec2.describe_images(Filters=[{"Name": "name", "Values": ["ubuntu*"]}]).get("Images") or \
            ec2.describe_images().get("Images", [])
        linux = [i for i in imgs if "ubuntu" in (i.get("Name") or "").lower()
                 and i.get("Architecture", "x86_64") == "x86_64"]
        if not (linux or imgs):
            raise RuntimeError("moto offers no AMI; pass --ami")
        ami = sorted(linux or imgs, key=lambda i: i["ImageId"])[0]["ImageId"]
    az = region + "a"
    inst = ec2.run_instances(ImageId=ami, InstanceType=args.instance_type, MinCount=1, MaxCount=1,
                             Placement={"AvailabilityZone": az},
                             IamInstanceProfile={"Arn": prof["Arn"]})
    i = inst["Instances"][0]
    ip = i.get("PrivateIpAddress") or "10.0.0.10"
    mac = (i.get("NetworkInterfaces") or [{}])[0].get("MacAddress") or "0e:49:61:0f:c3:11"
    cloud.instance = {
        "instance_id": i["InstanceId"],
        "ami_id": ami,
        "instance_type": args.instance_type,
        "az": az,
        "private_ip": ip,
        "hostname": i.get("PrivateDnsName") or f"ip-{ip.replace('.', '-')}.ec2.internal",
        "mac": mac,
        "reservation_id": inst.get("ReservationId", "r-0000000000000000"),
        "pending_time": iso(time.time()),
        "profile_arn": prof["Arn"],
        "profile_id": prof["InstanceProfileId"],
    }

    cloud.sts = client("sts", cloud.admin_key, cloud.admin_secret)

    if args.auth:  # self-check: a wrong secret must be refused
        bad = client("s3", cloud.admin_key, "wrong" + cloud.admin_secret)
        try:
            bad.list_buckets()
        except ClientError as e:
            if e.response["Error"]["Code"] != "SignatureDoesNotMatch":
                raise RuntimeError(f"auth self-check: expected SignatureDoesNotMatch, got {e}") from e
        else:
            raise RuntimeError("auth self-check: moto accepted a wrong secret (signature checking is off)")


# ----------------------------------------------------------------------------------------
# main


# The raw request-target of the request being handled on this thread (set by MotoHandler);
# used by the SigV4 canonicalisation fix below.
_RAW_REQUEST = threading.local()


def canonical_sigv4_url(raw_target: str) -> str:
    """Path and query of a request-target in SigV4 canonical form (every byte but A-Za-z0-9-_.~
    percent-encoded; '/' kept in the path), the way AWS canonicalises what the client sent."""
    quote, unquote = urllib.parse.quote, urllib.parse.unquote
    path, _, query = raw_target.partition("?")
    if "://" in path:
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    cpath = quote(unquote(path), safe="/~") or "/"
    pairs = []
    for item in query.split("&"):
        if not item:
            continue
        k, _, v = item.partition("=")
        if k == "X-Amz-Signature":
            continue
        pairs.append(f"{quote(unquote(k), safe='-_.~')}={quote(unquote(v), safe='-_.~')}")
    return cpath + ("?" + "&".join(sorted(pairs)) if pairs else "")


def install_sigv4_fix() -> None:
    """moto rebuilds the signed URL from werkzeug's request.url, which has already decoded
    %2F, %2C, %2B, ... -- so moto rejects correctly signed requests whose query values hold
    '/' (every ListObjectsV2 with a prefix/delimiter) or whose key holds '+', '=', ',', '%' or
    non-ASCII.  Recompute the canonical URL from the bytes the client actually sent."""
    from moto.iam import access_control as ac

    orig = ac.IAMRequestBase._create_aws_request

    def _create_aws_request(self):
        req = orig(self)
        raw = getattr(_RAW_REQUEST, "target", None)
        if raw:
            req.url = canonical_sigv4_url(raw)
        return req

    ac.IAMRequestBase._create_aws_request = _create_aws_request


def prewarm_moto() -> None:
    """Import moto's EC2 models with one shared boto3 Session.

    moto.ec2.models builds its region table at import time with three fresh boto3 Sessions
    (~0.2 s each); sharing one saves ~0.5 s of the startup budget.  Purely a speed-up."""
    import boto3
    from moto.core.base_backend import AccountSpecificBackend

    shared = AccountSpecificBackend.get_session()
    real = boto3.Session
    boto3.Session = lambda *a, **k: shared if not a and not k else real(*a, **k)
    try:
        import moto.ec2.models  # noqa: F401
    finally:
        boto3.Session = real


# GPU instance types moto 5.2.1's data lacks (its instance_types.json and offerings have p3dn.24xlarge but no
# p3.2xlarge/8xlarge/16xlarge, which EC2 offers): added from AWS's published specifications (the EC2 User Guide,
# "Accelerated computing instances"; every size x86_64, NVIDIA V100 16 GiB each), offered in every zone of the region,
# so that DescribeInstanceTypes and DescribeInstanceTypeOfferings answer for them as EC2 does.
MISSING_TYPES = {"p3.2xlarge": (8, 62464, 1), "p3.8xlarge": (32, 249856, 4), "p3.16xlarge": (64, 499712, 8)}


def add_missing_instance_types(region: str) -> None:
    import copy

    import moto.ec2.models.instance_types as it
    template = it.INSTANCE_TYPES.get("p3dn.24xlarge")
    if not template:
        return
    zones = sorted({o["Location"] for o in it.INSTANCE_TYPE_OFFERINGS["availability-zone"].get(region, [])})
    for name, (vcpus, mib, gpus) in MISSING_TYPES.items():
        if name in it.INSTANCE_TYPES:
            continue
        t = copy.deepcopy(template)
        t["InstanceType"] = name
        t["VCpuInfo"] = {"DefaultVCpus": vcpus, "DefaultCores": vcpus // 2, "DefaultThreadsPerCore": 2}
        t["MemoryInfo"] = {"SizeInMiB": mib}
        t["ProcessorInfo"] = {"SupportedArchitectures": ["x86_64"], "SustainedClockSpeedInGhz": 2.3,
                              "Manufacturer": "Intel"}
        t["GpuInfo"] = {"Gpus": [{"Name": "V100", "Manufacturer": "NVIDIA", "Count": gpus,
                                  "MemoryInfo": {"SizeInMiB": 16384}}], "TotalGpuMemoryInMiB": 16384 * gpus}
        t.pop("InstanceStorageInfo", None)
        t["InstanceStorageSupported"] = False
        it.INSTANCE_TYPES[name] = t
        it.INSTANCE_TYPE_OFFERINGS["region"].setdefault(region, []).append(
            {"InstanceType": name, "Location": region, "LocationType": "region"})
        for z in zones:
            it.INSTANCE_TYPE_OFFERINGS["availability-zone"][region].append(
                {"InstanceType": name, "Location": z, "LocationType": "availability-zone"})
        # the backend's list was made from INSTANCE_TYPES at import
        it.InstanceTypeBackend.instance_types.append(it.InstanceType(name))


def serve(srv, name: str) -> threading.Thread:
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, name=name, daemon=True)
    t.start()
    return t


def write_json_atomic(path: str, obj) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def parse_args(argv):
    p = argparse.ArgumentParser(description="mayfly fake cloud: moto + IMDSv2 fake + control API")
    p.add_argument("--state-dir", required=True, help="where cloud.json, cloud.log, stats.json go")
    p.add_argument("--no-auth", dest="auth", action="store_false",
                   help="disable moto's SigV4 signature/IAM checking")
    p.add_argument("--bucket", action="append", dest="buckets", metavar="NAME",
                   help="bucket to create (repeatable; default mayfly-test)")
    p.add_argument("--role-deny-terminate", action="store_true",
                   help="role policy denies ec2:TerminateInstances and ec2:StopInstances")
    p.add_argument("--cred-ttl", type=int, default=21600,
                   help="lifetime (s) of IMDS role credentials, advertised and enforced (default 21600)")
    p.add_argument("--cred-refresh-before", type=float, default=None,
                   help="issue a new credential set when the current one has less than this many "
                        "seconds left (default cred-ttl/2)")
    p.add_argument("--instance-type", default="p3.2xlarge")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--ami", default=None, help="AMI id for RunInstances (default: a moto Ubuntu AMI)")
    p.add_argument("--lifecycle", default="spot", choices=["spot", "on-demand"],
                   help="meta-data/instance-life-cycle (default spot)")
    p.add_argument("--user-data-file", default=None, help="initial user-data (raw bytes)")
    p.add_argument("--no-skew-check", action="store_true",
                   help="accept requests signed more than 15 minutes off (real AWS refuses them)")
    p.add_argument("--allow-chunked", action="store_true",
                   help="let S3 requests use Transfer-Encoding: chunked (real S3 answers 501)")
    p.add_argument("--no-payload-checks", dest="payload_checks", action="store_false",
                   help="don't check S3 bodies against Content-MD5 / hex x-amz-content-sha256 "
                        "(moto doesn't; real S3 answers BadDigest / XAmzContentSHA256Mismatch)")
    p.add_argument("--no-sig-fix", dest="sig_fix", action="store_false",
                   help="keep moto's stock SigV4 check, which wrongly rejects query values with '/' "
                        "and keys with + = , %% or non-ASCII (see PROTOCOL.md section 7)")
    p.add_argument("--port", type=int, default=0, help="moto endpoint port (default: OS-chosen)")
    p.add_argument("--imds-port", type=int, default=0)
    p.add_argument("--control-port", type=int, default=0)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging to cloud.log")
    instances.add_args(p)
    a = p.parse_args(argv)
    instances.check_args(p, a)
    if a.cred_ttl < 1:
        p.error("--cred-ttl must be >= 1")
    a.buckets = a.buckets or ["mayfly-test"]
    return a


def main(argv=None) -> int:
    t0 = time.time()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    state_dir = os.path.abspath(args.state_dir)
    os.makedirs(state_dir, exist_ok=True)
    state_file = os.path.join(state_dir, "cloud.json")
    try:
        os.unlink(state_file)
    except FileNotFoundError:
        pass
    handler = logging.FileHandler(os.path.join(state_dir, "cloud.log"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    LOG.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    for noisy in ("werkzeug", "botocore", "boto3", "urllib3", "moto"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    stop = threading.Event()

    def on_signal(signum, _frame):
        LOG.info("signal %d: shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    servers = []
    cloud = Cloud(args)
    cloud.buckets = list(dict.fromkeys(args.buckets))
    try:
        if args.user_data_file:
            with open(args.user_data_file, "rb") as f:
                cloud.user_data = f.read()
        # moto reads INITIAL_NO_AUTH_ACTION_COUNT at import; the 4 bootstrap calls are free, the
        # count is then forced to 0 (auth) or stays infinite (--no-auth).
        os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "4" if args.auth else "inf"
        os.environ.setdefault("AWS_DEFAULT_REGION", args.region)
        for k in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL"):
            os.environ.pop(k, None)
        from moto import settings
        from moto.core.authorization import ActionAuthenticatorMixin
        from moto.server import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        settings.INITIAL_NO_AUTH_ACTION_COUNT = 4 if args.auth else float("inf")
        ActionAuthenticatorMixin.request_count = 0

        prewarm_moto()
        add_missing_instance_types(args.region)
        if args.sig_fix:
            install_sigv4_fix()
        app = DomainDispatcherApplication(create_backend_app)
        moto_srv = make_server("127.0.0.1", args.port, app, threaded=True, request_handler=make_moto_handler())
        moto_srv.cloud = cloud
        moto_srv.daemon_threads = True
        servers.append(moto_srv)
        cloud.endpoint = f"http://127.0.0.1:{moto_srv.server_address[1]}"
        serve(moto_srv, "moto")

        imds_srv = QuietThreadingHTTPServer(("127.0.0.1", args.imds_port), IMDSHandler)
        imds_srv.cloud = cloud
        servers.append(imds_srv)
        ctl_srv = QuietThreadingHTTPServer(("127.0.0.1", args.control_port), ControlHandler)
        ctl_srv.cloud = cloud
        servers.append(ctl_srv)

        bootstrap(cloud, args)
        cloud.current_creds()  # first role credential set, so IMDS answers fast

        serve(imds_srv, "imds")
        serve(ctl_srv, "control")
        if args.simulate_instances:
            cloud.sim = instances.Simulator(cloud, args, imds_handler=IMDSHandler, server_cls=QuietThreadingHTTPServer,
                                            view_base=Cloud, serve=serve)
            cloud.sim.start(f"http://127.0.0.1:{ctl_srv.server_address[1]}")
        info = {
            "endpoint": cloud.endpoint,
            "imds_endpoint": f"http://127.0.0.1:{imds_srv.server_address[1]}",
            "control": f"http://127.0.0.1:{ctl_srv.server_address[1]}",
            "region": args.region,
            "admin_access_key": cloud.admin_key,
            "admin_secret_key": cloud.admin_secret,
            "account_id": ACCOUNT_ID,
            "instance_id": cloud.instance["instance_id"],
            "ami_id": cloud.instance["ami_id"],
            "instance_type": args.instance_type,
            "role": ROLE_NAME,
            "buckets": cloud.buckets,
            "auth": bool(args.auth),
            "cred_ttl": args.cred_ttl,
            "role_deny_terminate": bool(args.role_deny_terminate),
            "sig_fix": bool(args.sig_fix),
            "pid": os.getpid(),
        }
        if cloud.sim is not None:
            info.update(cloud.sim.info())
        write_json_atomic(state_file, info)
    except (Exception, SystemExit) as e:  # noqa: BLE001  (werkzeug sys.exit()s on a busy port)
        LOG.error("startup failed:\n%s", traceback.format_exc())
        sys.stderr.write(f"fakecloud: startup failed: {type(e).__name__}: {e}\n")
        sys.stderr.write(traceback.format_exc())
        for s in servers:
            try:
                s.server_close()
            except Exception:  # noqa: BLE001
                pass
        return 1
    LOG.info("ready in %.2fs: %s", time.time() - t0, json.dumps({k: v for k, v in info.items()
                                                                    if k != "admin_secret_key"}))
    print(json.dumps(info), flush=True)

    while not stop.wait(5):
        pass
    if cloud.sim is not None:  # every simulated instance's processes go first
        cloud.sim.stop()

    def _stop(srv):
        try:
            srv.shutdown()
            srv.server_close()
        except Exception:  # noqa: BLE001
            LOG.warning("shutdown: %s", traceback.format_exc())

    stoppers = [threading.Thread(target=_stop, args=(s,)) for s in servers]
    for t in stoppers:
        t.start()
    for t in stoppers:
        t.join(5)
    try:
        write_json_atomic(os.path.join(state_dir, "stats.json"), cloud.stats.snapshot())
    except Exception:  # noqa: BLE001
        LOG.warning("could not write stats.json: %s", traceback.format_exc())
    LOG.info("bye")
    logging.shutdown()
    sys.stdout.flush()
    os._exit(0)  # skip slow interpreter teardown of moto; nothing left to flush


if __name__ == "__main__":
    sys.exit(main())

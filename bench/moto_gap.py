#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Why one client's upload costs the fake cloud (moto) more than another's (issue 16, item 4; docs/performance.md).

    python3 bench/moto_gap.py --build build [--old OLD_BUILD/mayfly] [--size-mib 256] [--reps 3] [-- CLOUD_ARGS]

Uploads --size-mib through tests/fakes/cloud.py (no auth, as `make bench`) with mayfly (and --concurrency 10),
an older mayfly if given, and awscli, interleaved; prints each one's median MB/s, client CPU, the server's CPU per
GiB and the request count. Then the cost of moto's CompleteMultipartUpload with and without
x-amz-checksum-algorithm (boto3, the same 8 MiB parts). Not part of `make bench`."""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import bench as B  # noqa: E402
from harness import Cloud  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(os.path.dirname(HERE), "build"))
    ap.add_argument("--old", default=None, help="another mayfly binary to compare (e.g. a build of main)")
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("cloud_args", nargs="*", help="extra fake-cloud options (e.g. --no-payload-checks)")
    a = ap.parse_args()
    size = a.size_mib << 20
    import tempfile
    work = tempfile.mkdtemp(prefix="mayfly-moto-gap-")
    src = os.path.join(work, "src.bin")
    B.make_random_file(src, size)
    c = Cloud(auth=False, extra=a.cloud_args).__enter__()
    try:
        env = c.admin_env()
        env["AWS_DEFAULT_REGION"] = c.info["region"]
        empty = os.path.join(work, "empty")
        open(empty, "w").close()
        env.update(AWS_CONFIG_FILE=empty, AWS_SHARED_CREDENTIALS_FILE=empty)
        mayfly = os.path.join(os.path.abspath(a.build), "mayfly")
        clients = {"mayfly": [mayfly, "cp", src, "s3://mayfly-test/new", "--quiet"],
                   "mayfly --concurrency 10": [mayfly, "cp", src, "s3://mayfly-test/new10", "--quiet",
                                               "--concurrency", "10"],
                   "aws s3 cp": [B.find_aws(), "s3", "cp", src, "s3://mayfly-test/aws", "--endpoint-url", c.endpoint,
                                 "--only-show-errors"]}
        if a.old:
            clients["mayfly (old)"] = [a.old, "cp", src, "s3://mayfly-test/old", "--quiet"]
        res = {k: [] for k in clients}
        for _ in range(a.reps):
            for k, cmd in clients.items():
                s0 = c.stats()["moto_requests"]
                r = B.timed(cmd, env, 600, c.proc.pid, work)
                res[k].append((r.wall, r.cpu, r.srv_cpu, c.stats()["moto_requests"] - s0, r.err))
        print("%d MiB through the fake cloud (no auth), median of %d; load average %s" % (
            a.size_mib, a.reps, "/".join(open("/proc/loadavg").read().split()[:3])))
        for k, v in res.items():
            m = sorted(v)[(len(v) - 1) // 2]
            print("  %-26s %7.1f MB/s  client CPU %.2f s  server CPU %.2f s/GiB  requests %d%s" % (
                k, size / m[0] / 1e6, m[1], m[2] / (size / (1 << 30)), m[3], "  " + m[4] if m[4] else ""))
        s3 = c.boto("s3")
        part = os.urandom(8 << 20)
        print("CompleteMultipartUpload of 32 x 8 MiB, server CPU s:")
        for alg in (None, "CRC32"):
            kw = {"ChecksumAlgorithm": alg} if alg else {}
            key = "complete-%s" % alg
            up = s3.create_multipart_upload(Bucket="mayfly-test", Key=key, **kw)["UploadId"]
            parts = []
            for n in range(1, 33):
                r = s3.upload_part(Bucket="mayfly-test", Key=key, UploadId=up, PartNumber=n, Body=part, **kw)
                p = {"PartNumber": n, "ETag": r["ETag"]}
                if alg:
                    p["ChecksumCRC32"] = r["ChecksumCRC32"]
                parts.append(p)
            s1 = B.proc_cpu(c.proc.pid)
            s3.complete_multipart_upload(Bucket="mayfly-test", Key=key, UploadId=up, MultipartUpload={"Parts": parts})
            print("  created with x-amz-checksum-algorithm %-6s %.2f" % (alg or "none:", B.proc_cpu(c.proc.pid) - s1))
    finally:
        c.__exit__(None, None, None)
        import shutil
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

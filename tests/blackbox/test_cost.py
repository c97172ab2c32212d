# SPDX-License-Identifier: Apache-2.0
"""Cost in status.json (issue 15) on an on-demand instance: the hourly price from the Price List API's GetProducts
(a fake that checks the SigV4 signature against the instance role's credentials: moto 5.2.1 has no pricing
service), looked up once per run; a role that may not call it leaves the price unknown, and the report says so
instead of showing a number. (The spot price from moto's DescribeSpotPriceHistory is checked by test_report.)"""
import json
import os
import re
import sys
import urllib.request

from harness import ROOT, Cloud, check
from jobrun import BUCKET, JobRun, upload_source

sys.path.insert(0, os.path.join(ROOT, "tests", "fakes"))
from pricing import PriceList  # noqa: E402


def setup():
    cloud = Cloud(extra=["--lifecycle", "on-demand", "--instance-type", "g5.xlarge"]).__enter__()
    upload_source(cloud, "src/cost.tar.gz", scripts={"ok.sh": "#!/bin/sh\necho hello; sleep 1\n"})
    return {"cloud": cloud}


def teardown(ctx):
    ctx["cloud"].__exit__(None, None, None)


def role_creds(cloud):
    """The instance role's credentials, read from IMDS as the agent reads them: {access key id: (id, secret, token)}."""
    imds = cloud.info["imds_endpoint"]
    tok = urllib.request.urlopen(urllib.request.Request(
        imds + "/latest/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"})).read()
    doc = json.loads(urllib.request.urlopen(urllib.request.Request(
        imds + "/latest/meta-data/iam/security-credentials/" + cloud.info["role"],
        headers={"X-aws-ec2-metadata-token": tok.decode()})).read())
    return {doc["AccessKeyId"]: (doc["AccessKeyId"], doc["SecretAccessKey"], doc["Token"])}


def run_with(ctx, name, prices):
    r = JobRun(ctx["cloud"], {"name": name, "source": "s3://%s/src/cost.tar.gz" % BUCKET,
                              "experiments": [{"name": "hello", "command": ["./ok.sh"]}]},
               env={"AWS_ENDPOINT_URL_PRICING": prices.endpoint})
    try:
        rc = r.run()
        check(rc == 0, r.stderr[-3000:])
        return r, json.loads(r.get("status.json")), r.get("report.html").decode()
    finally:
        r.close()


def test_on_demand_price_from_the_price_list_api(ctx):
    creds = role_creds(ctx["cloud"])
    with PriceList(creds.get, price="1.0060000000") as prices:
        r, st, page = run_with(ctx, "ondemand", prices)
    check(prices.bad_signatures == 0, "GetProducts was not signed for pricing/us-east-1 with the role's key")
    check(len(prices.requests) == 1, "the on-demand price was looked up %d times (once is enough)" % len(prices.requests))
    f = {x["Field"]: x["Value"] for x in prices.requests[0]["Filters"]}
    check(prices.requests[0]["ServiceCode"] == "AmazonEC2" and f["instanceType"] == "g5.xlarge" and
          f["regionCode"] == "us-east-1" and f["operatingSystem"] == "Linux" and f["tenancy"] == "Shared" and
          f["preInstalledSw"] == "NA" and f["capacitystatus"] == "Used", repr(prices.requests[0]))
    inst = st["cost"]["instances"][0]
    check(inst["lifecycle"] == "on-demand" and inst["hourly_price"] == 1.006 and
          inst["price_source"] == "pricing:GetProducts" and inst["id"] == ctx["cloud"].info["instance_id"],
          json.dumps(st["cost"]))
    want = round(inst["seconds"] * 1.006 / 3600, 6)
    check(abs(inst["cost"] - want) < 2e-6 and abs(st["cost"]["total"] - inst["cost"]) < 1e-9 and
          st["cost"]["currency"] == "USD", json.dumps(st["cost"]))
    check("$1.0060/h" in page and "pricing:GetProducts" in page and 'id="cost-total">$' in page,
          "the report does not show the price")


def test_price_unknown_when_the_role_may_not_call_pricing(ctx):
    creds = role_creds(ctx["cloud"])
    with PriceList(creds.get, deny=True) as prices:
        r, st, page = run_with(ctx, "denied", prices)
    c = st["cost"]
    inst = c["instances"][0]
    check("total" not in c and "cost" not in inst and "hourly_price" not in inst, "a number without a price: %s" %
          json.dumps(c))
    check("AccessDeniedException" in inst["price_unknown"] and c["total_unknown"], json.dumps(c))
    check(inst["seconds"] >= 1, "the instance's time is counted even without a price")
    check("cost: the price of %s (g5.xlarge, on-demand) is unknown: GetProducts failed: HTTP 400 "
          "AccessDeniedException" % inst["id"] in r.stderr, r.stderr[-2000:])
    check(r.stderr.count("is unknown") == 1, "the same failure was logged more than once")
    check(re.search(r'id="cost-total">Total unknown: ', page) and "Price unknown: GetProducts failed" in page,
          "the report does not say the price is unknown")

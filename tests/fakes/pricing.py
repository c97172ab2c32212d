# SPDX-License-Identifier: Apache-2.0
"""A fake AWS Price List API (moto 5.2.1 has none: GetProducts there is a 500) for the on-demand cost tests.

`with PriceList(creds_for, price="1.006") as p:` serves POST / with X-Amz-Target AWSPriceListService.GetProducts
(JSON 1.1) on http://127.0.0.1:PORT (p.endpoint, for AWS_ENDPOINT_URL_PRICING). Each request's SigV4 signature is
recomputed with botocore for the credentials creds_for(access_key_id) returns (service `pricing`, region
us-east-1); a wrong one gets 403 InvalidSignatureException. The answer is one EC2 product in the Price List's own
shape (the product document as a JSON string) at `price` USD/hour, or, with deny=True, the 400
AccessDeniedException a role without pricing:GetProducts gets. p.requests: the parsed bodies."""
import http.server
import json
import re
import threading

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

CRED = re.compile(r"Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]+)")


def product(instance_type, region, price):
    sku = "FAKESKU" + instance_type.replace(".", "").upper()
    doc = {"product": {"productFamily": "Compute Instance", "sku": sku,
                       "attributes": {"instanceType": instance_type, "regionCode": region, "operatingSystem": "Linux",
                                      "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used",
                                      "licenseModel": "No License required"}},
           "serviceCode": "AmazonEC2",
           "terms": {"OnDemand": {sku + ".JRTCKXETXF": {"offerTermCode": "JRTCKXETXF", "sku": sku,
                                                         "priceDimensions": {sku + ".JRTCKXETXF.6YS6EN2CT7": {
                                                             "unit": "Hrs", "pricePerUnit": {"USD": price},
                                                             "description": "$%s per On Demand Linux %s Instance Hour"
                                                                            % (price, instance_type)}}}}},
           "version": "20260101000000", "publicationDate": "2026-01-01T00:00:00Z"}
    return json.dumps(doc)


class PriceList:
    def __init__(self, creds_for, price="1.006", deny=False):
        self.requests = []
        self.bad_signatures = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def reply(self, code, obj):
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def signed_ok(self, body):
                m = CRED.search(self.headers.get("Authorization", ""))
                if not m or m.group(3) != "us-east-1" or m.group(4) != "pricing":
                    return False
                c = creds_for(m.group(1))
                if not c:
                    return False
                names = m.group(5).split(";")
                req = AWSRequest(method="POST", url="http://%s/" % self.headers["Host"], data=body,
                                 headers={n: self.headers[n] for n in names})
                req.context["timestamp"] = self.headers["X-Amz-Date"]
                auth = SigV4Auth(Credentials(*c), "pricing", "us-east-1")
                sts = auth.string_to_sign(req, auth.canonical_request(req))
                return auth.signature(sts, req) == m.group(6)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("X-Amz-Target") != "AWSPriceListService.GetProducts":
                    return self.reply(400, {"__type": "UnknownOperationException"})
                if not self.signed_ok(body):
                    outer.bad_signatures += 1
                    return self.reply(403, {"__type": "InvalidSignatureException",
                                            "message": "The request signature we calculated does not match"})
                q = json.loads(body)
                outer.requests.append(q)
                if deny:
                    return self.reply(400, {"__type": "AccessDeniedException",
                                            "Message": "User is not authorized to perform: pricing:GetProducts"})
                f = {x["Field"]: x["Value"] for x in q.get("Filters", [])}
                items = [product(f["instanceType"], f["regionCode"], price)] if "instanceType" in f else []
                self.reply(200, {"FormatVersion": "aws_v1", "PriceList": items})

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = "http://127.0.0.1:%d" % self.srv.server_address[1]

    def __enter__(self):
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.srv.shutdown()
        self.srv.server_close()
        return False

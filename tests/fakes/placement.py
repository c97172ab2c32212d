# SPDX-License-Identifier: Apache-2.0
"""EC2 placement groups, which moto 5.2.1 lacks (CreatePlacementGroup and the rest are a 500 there): the fake cloud's
front end answers CreatePlacementGroup, DeletePlacementGroup and DescribePlacementGroups from here once moto has
checked the request's signature and policy (moto authenticates before it finds it has no such action).

As EC2 does: a name taken is InvalidPlacementGroup.Duplicate, an unknown one InvalidPlacementGroup.Unknown, DryRun
is 412 DryRunOperation, and DeletePlacementGroup is InvalidPlacementGroup.InUse while an instance that is not
terminated was launched from a launch template whose Placement.GroupName is the group (the templates are learnt
from the CreateLaunchTemplate answers the front end passes on; moto's instances carry aws:ec2launchtemplate:id)."""
import re
import secrets
import threading
import uuid
from xml.sax.saxutils import escape

ACTIONS = ("CreatePlacementGroup", "DeletePlacementGroup", "DescribePlacementGroups")
NS = "http://ec2.amazonaws.com/doc/2016-11-15/"


def _err(code, message):
    return 400, ("<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors>"
                 "<RequestID>%s</RequestID></Response>" % (code, escape(message), uuid.uuid4())).encode()


def _ok(action, inner):
    return 200, ('<?xml version="1.0" encoding="UTF-8"?><%sResponse xmlns="%s"><requestId>%s</requestId>%s</%sResponse>'
                 % (action, NS, uuid.uuid4(), inner, action)).encode()


def _tags(params):
    """The placement-group TagSpecification's tags, as (key, value) pairs."""
    out = []
    for k, v in params.items():
        m = re.fullmatch(r"TagSpecification\.(\d+)\.ResourceType", k)
        if not m or v[0] != "placement-group":
            continue
        n = 1
        while "TagSpecification.%s.Tag.%d.Key" % (m.group(1), n) in params:
            out.append((params["TagSpecification.%s.Tag.%d.Key" % (m.group(1), n)][0],
                        (params.get("TagSpecification.%s.Tag.%d.Value" % (m.group(1), n)) or [""])[0]))
            n += 1
    return out


class PlacementGroups:
    def __init__(self, account, region):
        self.account, self.region = account, region
        self.lock = threading.Lock()
        self.groups = {}      # name -> {"id", "strategy", "tags"}
        self.templates = {}   # launch template id -> the placement group its data names

    def learn_template(self, params, body):
        """A CreateLaunchTemplate that moto answered 200: which placement group its instances are in."""
        name = (params.get("LaunchTemplateData.Placement.GroupName") or [None])[0]
        m = re.search(rb"<launchTemplateId>([^<]+)</launchTemplateId>", body)
        if name and m:
            with self.lock:
                self.templates[m.group(1).decode()] = name

    def _in_use(self, name):
        from moto.ec2.models import ec2_backends
        backend = ec2_backends[self.account][self.region]
        for inst in backend.all_instances():
            if inst.state in ("terminated",):
                continue
            lt = {t["key"]: t["value"] for t in inst.get_tags()}.get("aws:ec2launchtemplate:id")
            if lt and self.templates.get(lt) == name:
                return inst.id
        return None

    def _item(self, name, g):
        tags = "".join("<item><key>%s</key><value>%s</value></item>" % (escape(k), escape(v)) for k, v in g["tags"])
        return ("<groupName>%s</groupName><state>available</state><strategy>%s</strategy><groupId>%s</groupId>"
                "<groupArn>arn:aws:ec2:%s:%s:placement-group/%s</groupArn><tagSet>%s</tagSet>"
                % (escape(name), g["strategy"], g["id"], self.region, self.account, escape(name), tags))

    def answer(self, action, params):
        """(status, body) for one call; params as urllib.parse.parse_qs gives them."""
        p = lambda k: (params.get(k) or [None])[0]  # noqa: E731
        if p("DryRun") == "true":
            return 412, _err("DryRunOperation", "Request would have succeeded, but DryRun flag is set.")[1]
        name = p("GroupName")
        with self.lock:
            if action == "CreatePlacementGroup":
                if not name:
                    return _err("MissingParameter", "The request must contain the parameter GroupName")
                if name in self.groups:
                    return _err("InvalidPlacementGroup.Duplicate", "The Placement Group '%s' already exists." % name)
                if p("Strategy") not in ("cluster", "spread", "partition"):
                    return _err("InvalidParameterValue", "Invalid strategy: %s" % p("Strategy"))
                g = self.groups[name] = {"id": "pg-" + secrets.token_hex(8)[:17], "strategy": p("Strategy"),
                                         "tags": _tags(params)}
                return _ok(action, "<placementGroup>%s</placementGroup>" % self._item(name, g))
            if action == "DeletePlacementGroup":
                if name not in self.groups:
                    return _err("InvalidPlacementGroup.Unknown", "The Placement Group '%s' is unknown." % name)
                holder = self._in_use(name)
                if holder:
                    return _err("InvalidPlacementGroup.InUse",
                                "There are running instances in the placement group '%s' (%s)." % (name, holder))
                del self.groups[name]
                return _ok(action, "<return>true</return>")
            names = [v[0] for k, v in params.items() if re.fullmatch(r"GroupName\.\d+", k)]
            items = "".join("<item>%s</item>" % self._item(n, g) for n, g in sorted(self.groups.items())
                            if not names or n in names)
            return _ok(action, "<placementGroupSet>%s</placementGroupSet>" % items)

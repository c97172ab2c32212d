# SPDX-License-Identifier: Apache-2.0
"""userdata/: the skeleton (cloud-config.yaml) and the install script are what `mayfly userdata` renders (the script
byte for byte; the skeleton as YAML, filled the way Terraform's templatefile() fills it), and each worked example
(AWS CLI, Terraform, CloudFormation) gives user-data that cloud-init's own schema check accepts and an instance set
up the way `mayfly launch` sets one up: terminate on shutdown, IMDSv2 only with a hop limit of 1, the instance role.
The AWS CLI example and the CloudFormation template run against moto; Terraform is not installed here, so its
templatefile() call is checked against the skeleton and evaluated by this file.

The CloudFormation template carries its own copy of the job and the install script (CloudFormation reads no
files): `python3 tests/blackbox/test_userdata_examples.py --refresh` rewrites it from userdata/."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import ROOT, Cloud, check, mayfly, out  # noqa: E402

UD = os.path.join(ROOT, "userdata")
EX = os.path.join(UD, "examples")
CFN = os.path.join(EX, "cloudformation", "launch-template.yaml")
PLACEHOLDER = re.compile(r"\$\{(?:jsonencode\((\w+)\)|(\w+))\}")
EXAMPLE_BINARY = "s3://my-bucket/tools/mayfly-0.1.0"
EXAMPLE_SHA = "0" * 64


def read(*p):
    with open(os.path.join(*p)) as f:
        return f.read()


def tf_jsonencode(s):
    """Terraform's jsonencode of a string: JSON, with <, >, &, U+2028 and U+2029 as \\u escapes."""
    j = json.dumps(s, ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        j = j.replace(ch, esc)
    return j


def tf_render(template, values):
    """templatefile() for the two expressions the skeleton uses: ${jsonencode(name)} and ${name}."""
    missing = [m.group(1) or m.group(2) for m in PLACEHOLDER.finditer(template)
               if (m.group(1) or m.group(2)) not in values]
    check(not missing, "templatefile() would fail: no value for %s" % missing)
    return PLACEHOLDER.sub(lambda m: tf_jsonencode(values[m.group(1)]) if m.group(1) else str(values[m.group(2)]),
                           template)


def placeholders(template):
    return {m.group(1) or m.group(2) for m in PLACEHOLDER.finditer(template)}


def schema_ok(text, what):
    from test_delivery import schema_check
    d = tempfile.mkdtemp(prefix="mayfly-udx-")
    path = os.path.join(d, "user-data.yaml")
    with open(path, "w" if isinstance(text, str) else "wb") as f:
        f.write(text)
    rc, msg = schema_check(path)
    shutil.rmtree(d)
    check(rc == 0 and "Valid cloud-config" in msg, "%s: %s" % (what, msg))


def yaml_load(text):
    import yaml
    return yaml.safe_load(text)


def test_skeleton_and_script_as_they_are():
    skel = read(UD, "cloud-config.yaml")
    check(skel.startswith("#cloud-config\n"), "the skeleton does not start with #cloud-config")
    schema_ok(skel, "userdata/cloud-config.yaml unfilled")
    check(placeholders(skel) == {"job", "env", "backstop_seconds", "install_sh", "install_route", "install_source",
                                 "install_sha256", "install_region"}, repr(placeholders(skel)))
    check("%{" not in skel, "a Terraform directive in the skeleton")
    p = subprocess.run(["sh", "-n", os.path.join(UD, "install.sh")], capture_output=True, text=True)
    check(p.returncode == 0, p.stderr)
    if shutil.which("shellcheck"):
        p = subprocess.run(["shellcheck", "-s", "sh", os.path.join(UD, "install.sh")], capture_output=True, text=True)
        check(p.returncode == 0, p.stdout[-2000:])


def test_mayfly_fills_the_skeleton_as_templatefile_does():
    job = os.path.join(EX, "job.json")
    cases = [(["--install", "preinstalled"], dict(install_route="preinstalled", install_source="", install_sha256="")),
             (["--install", "binary=" + EXAMPLE_BINARY, "--sha256", EXAMPLE_SHA],
              dict(install_route="binary", install_source=EXAMPLE_BINARY, install_sha256=EXAMPLE_SHA)),
             (["--install", "deb=https://example.com/mayfly_0.1.0_amd64.deb?x=<1>&y", "--sha256", EXAMPLE_SHA],
              dict(install_route="deb", install_source="https://example.com/mayfly_0.1.0_amd64.deb?x=<1>&y",
                   install_sha256=EXAMPLE_SHA))]
    for args, route in cases:
        p = mayfly("userdata", job, "--env", "AWS_ENDPOINT_URL=https://vpce.example", *args)
        check(p.returncode == 0, out(p))
        values = dict(job=read(job), env="AWS_ENDPOINT_URL=https://vpce.example\n", backstop_seconds=14 * 3600 + 2700,
                      install_sh=read(UD, "install.sh"), install_region="", **route)
        want = tf_render(read(UD, "cloud-config.yaml"), values)
        check(yaml_load(p.stdout) == yaml_load(want), "%s: mayfly's user-data differs from the skeleton filled in" % args)
        check(b"\n#" not in p.stdout.split(b"\n", 1)[1], "comment lines rendered")


def test_terraform_example_fills_the_skeleton():
    tf = read(EX, "terraform", "main.tf")
    m = re.search(r'templatefile\("\$\{path\.module\}/\.\./\.\./cloud-config\.yaml", \{\n(.*?)\n\s*\}\)', tf, re.S)
    check(m, "main.tf does not call templatefile() on userdata/cloud-config.yaml")
    passed = dict(re.findall(r"^\s*(\w+)\s*=\s*(.+?)\s*$", m.group(1), re.M))
    skel = read(UD, "cloud-config.yaml")
    check(set(passed) == placeholders(skel), "main.tf passes %s, the skeleton uses %s" %
          (sorted(passed), sorted(placeholders(skel))))
    defaults = dict(re.findall(r'variable "(\w+)" \{[^}]*?default\s*=\s*"?([^"\n]*)"?\n', tf, re.S))
    defaults["mayfly_sha256"] = EXAMPLE_SHA

    def evaluate(expr):
        f = re.fullmatch(r'file\("\$\{path\.module\}/(.+)"\)', expr)
        if f:
            return read(EX, "terraform", f.group(1))
        v = re.fullmatch(r"var\.(\w+)", expr)
        if v:
            return defaults[v.group(1)]
        s = re.fullmatch(r'"(.*)"', expr)
        check(s, "main.tf: cannot evaluate %s" % expr)
        return s.group(1)
    values = {k: evaluate(v) for k, v in passed.items()}
    check(values["install_sh"] == read(UD, "install.sh") and values["job"] == read(EX, "job.json"), "wrong files")
    ud = tf_render(skel, values)
    schema_ok(ud, "the Terraform example's user-data")
    doc = yaml_load(ud)
    check(doc["runcmd"] == [["/bin/sh", "/var/lib/mayfly-install.sh", "binary", EXAMPLE_BINARY, EXAMPLE_SHA, ""]],
          repr(doc["runcmd"]))
    for want in ('instance_initiated_shutdown_behavior = "terminate"', 'http_tokens                 = "required"',
                 "http_put_response_hop_limit = 1", "user_data = base64encode(local.user_data)"):
        check(want in tf, "main.tf lacks %s" % want)


def cfn_load(text):
    """CloudFormation YAML: the short intrinsic tags (!Ref, !Sub, …) read as {"Ref": …} and the like."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def construct(loader, suffix, node):
        name = "Ref" if suffix == "Ref" else "Fn::" + suffix
        if isinstance(node, yaml.ScalarNode):
            return {name: loader.construct_scalar(node)}
        if isinstance(node, yaml.SequenceNode):
            return {name: loader.construct_sequence(node)}
        return {name: loader.construct_mapping(node)}
    Loader.add_multi_constructor("!", construct)
    return yaml.load(text, Loader=Loader)


def cfn_user_data():
    """What refresh() puts in the template: the skeleton filled by hand, block scalars for readability."""
    def block(text, indent):
        return "".join(" " * indent + line if line.strip() else "\n" for line in text.splitlines(True))
    return ("#cloud-config\n"
            "# userdata/cloud-config.yaml filled in by hand; refreshed from userdata/ by\n"
            "# python3 tests/blackbox/test_userdata_examples.py --refresh\n"
            "write_files:\n"
            "  - path: /etc/mayfly/job.json\n    permissions: \"0644\"\n    owner: root:root\n    content: |\n" +
            block(read(EX, "job.json"), 6) +
            "  - path: /etc/mayfly/env\n    permissions: \"0600\"\n    owner: root:root\n    content: \"\"\n"
            "  - path: /etc/systemd/system/mayfly-backstop.timer.d/deadline.conf\n    permissions: \"0644\"\n"
            "    owner: root:root\n    content: |\n      [Timer]\n      OnBootSec=\n      OnBootSec=%ds\n" % (14 * 3600 + 2700) +
            "  - path: /var/lib/mayfly-install.sh\n    permissions: \"0700\"\n    owner: root:root\n    content: |\n" +
            block(read(UD, "install.sh"), 6) +
            "runcmd:\n  - [/bin/sh, /var/lib/mayfly-install.sh, binary, \"%s\", \"%s\", \"\"]\n" %
            (EXAMPLE_BINARY, EXAMPLE_SHA))


def refresh():
    text = read(CFN)
    head, sep, rest = text.partition("          Fn::Base64: |\n")
    _, end, tail = rest.partition("        # end of the user-data\n")
    check(sep and end, "launch-template.yaml lost its Fn::Base64 / end markers")
    ud = "".join("            " + line if line.strip() else "\n" for line in cfn_user_data().splitlines(True))
    with open(CFN, "w") as f:
        f.write(head + sep + ud + end + tail)


def test_cloudformation_template_is_current_and_valid():
    tpl = cfn_load(read(CFN))
    data = tpl["Resources"]["MayflyJob"]["Properties"]["LaunchTemplateData"]
    ud = data["UserData"]["Fn::Base64"]
    check(ud == cfn_user_data(), "launch-template.yaml's user-data is not userdata/ as it is now: run "
                                 "python3 tests/blackbox/test_userdata_examples.py --refresh")
    schema_ok(ud, "the CloudFormation template's user-data")
    files = {f["path"]: f for f in yaml_load(ud)["write_files"]}
    check(files["/var/lib/mayfly-install.sh"]["content"] == read(UD, "install.sh"), "install script differs")
    check(json.loads(files["/etc/mayfly/job.json"]["content"]) == json.loads(read(EX, "job.json")), "job differs")
    check(data["MetadataOptions"] == {"HttpEndpoint": "enabled", "HttpTokens": "required", "HttpPutResponseHopLimit": 1}
          and data["InstanceInitiatedShutdownBehavior"] == "terminate", repr(data))
    lint = shutil.which("cfn-lint")
    if lint:
        p = subprocess.run([lint, CFN], capture_output=True, text=True, timeout=300)
        check(p.returncode == 0, "cfn-lint: " + p.stdout[-2000:] + p.stderr[-500:])


def setup():
    return Cloud(auth=True).__enter__()


def teardown(c):
    c.__exit__(None, None, None)


def instance(c, iid):
    ec2 = c.boto("ec2")
    inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    beh = ec2.describe_instance_attribute(InstanceId=iid, Attribute="instanceInitiatedShutdownBehavior")
    ud = ec2.describe_instance_attribute(InstanceId=iid, Attribute="userData")["UserData"]["Value"]
    import base64
    return inst, beh["InstanceInitiatedShutdownBehavior"]["Value"], base64.b64decode(ud)


def test_aws_cli_example_launches_like_mayfly_launch(c):
    env = c.admin_env()
    env.update(AMI=c.info["ami_id"], MAYFLY=os.path.join(os.environ["MAYFLY_BUILD"], "mayfly"),
               MAYFLY_SHA256=EXAMPLE_SHA, AWS_DEFAULT_REGION=c.info["region"], INSTANCE_PROFILE=c.info["role"])
    p = subprocess.run(["sh", os.path.join(EX, "aws-cli", "run-instances.sh")], env=env, capture_output=True,
                       timeout=300)
    check(p.returncode == 0, out(p))
    iid = p.stdout.decode().strip()
    check(re.fullmatch(r"i-[0-9a-f]+", iid), out(p))
    inst, shutdown, ud = instance(c, iid)
    mo = inst["MetadataOptions"]
    check(mo.get("HttpTokens") == "required" and mo.get("HttpPutResponseHopLimit") == 1 and shutdown == "terminate",
          "%r %s" % (mo, shutdown))
    check(inst.get("InstanceLifecycle") == "spot" and inst["IamInstanceProfile"]["Arn"].endswith("/" + c.info["role"]),
          repr(inst))
    tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
    check(tags.get("mayfly:run") == "resnet-sweep", repr(tags))
    schema_ok(ud, "the AWS CLI example's user-data")
    check(yaml_load(ud)["runcmd"][0][2:] == ["binary", EXAMPLE_BINARY, EXAMPLE_SHA, ""], ud[-300:])


def test_cloudformation_template_deploys_on_moto(c):
    cf = c.boto("cloudformation")
    cf.create_stack(StackName="mayfly-example", TemplateBody=read(CFN),
                    Parameters=[{"ParameterKey": "ImageId", "ParameterValue": c.info["ami_id"]}])
    st = cf.describe_stacks(StackName="mayfly-example")["Stacks"][0]
    check(st["StackStatus"] == "CREATE_COMPLETE", st["StackStatus"])
    lt = c.boto("ec2").describe_launch_template_versions(LaunchTemplateName="mayfly-resnet-sweep")
    data = lt["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    import base64
    ud = base64.b64decode(data["UserData"]).decode()
    check(ud == cfn_user_data(), "the user-data in the launch template differs")
    check(data.get("MetadataOptions", {}).get("HttpPutResponseHopLimit") in (1, "1"), repr(data.get("MetadataOptions")))


if __name__ == "__main__":
    if sys.argv[1:] == ["--refresh"]:
        refresh()
        print("rewrote " + CFN)
    else:
        print(__doc__)

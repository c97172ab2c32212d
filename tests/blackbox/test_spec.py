# SPDX-License-Identifier: Apache-2.0
"""`mayfly check` and docs/job-schema.json agree on what a valid job is; errors name the JSON path."""
import json
import os
import tempfile

from harness import ROOT, check, mayfly, out

BASE = {"name": "t", "source": "s3://bkt/src/x.tar.gz", "results": "s3://bkt/r/",
        "experiments": [{"name": "a", "command": ["python", "train.py"]}]}


def variant(**kw):
    j = json.loads(json.dumps(BASE))
    for k, v in kw.items():
        if v is None:
            j.pop(k, None)
        else:
            j[k] = v
    return j


CASES = [
    (variant(), None),
    (json.load(open(os.path.join(ROOT, "examples", "job.json"))), None),
    (variant(extra=1), "$.extra: unknown key"),
    (variant(name=None), "$.name: is required"),
    (variant(name="bad name"), "$.name"),
    (variant(source="http://x/y.tar"), "$.source"),
    (variant(source="s3://bkt/x.rar"), "$.source"),
    (variant(results=7), "$.results: must be a string"),
    (variant(experiments=[]), "$.experiments"),
    (variant(experiments=[{"name": "a"}]), "$.experiments[0].command: is required"),
    (variant(experiments=[{"name": "a", "command": []}]), "$.experiments[0].command"),
    (variant(experiments=[{"name": "a", "command": [1]}]), "$.experiments[0].command[0]"),
    (variant(experiments=[{"name": "a", "command": "x", "timeout": "soon"}]), "$.experiments[0].timeout"),
    (variant(experiments=[{"name": "a", "command": "x", "timout": 5}]), "$.experiments[0].timout: unknown key"),
    (variant(env={"conda": "pytorch", "venv": "/x"}), "$.env"),
    (variant(env={"venv": "relative"}), "$.env.venv"),
    (variant(env={"conda": "pytorch"}), None),
    (variant(outputs=["../x"]), "$.outputs[0]"),
    (variant(outputs=["/abs"]), "$.outputs[0]"),
    (variant(checkpoint={"path": "ck", "interval": "5m"}), None),
    (variant(checkpoint={"interval": 5}), "$.checkpoint.path: is required"),
    (variant(gpu={"require": "yes"}), "$.gpu.require"),
    (variant(gpu={"min_count": 2, "idle_minutes": 0.5}), None),
    (variant(gpu={"min_count": -1}), "$.gpu.min_count"),
    (variant(on_exit="explode"), "$.on_exit"),
    (variant(on_error="keep", max_runtime="2h", log_interval=5), None),
    (variant(max_runtime=-5), "$.max_runtime"),
    (variant(environment={"MAYFLY_X": "1"}), "$.environment.MAYFLY_X"),
    (variant(environment={"GOOD": "1"}), None),
    (variant(environment={"1BAD": "1"}), "$.environment.1BAD"),
    (variant(spot={"grace_seconds": 200}), "$.spot.grace_seconds"),
    (variant(workdir="relative/dir"), "$.workdir"),
]


def test_check_accepts_and_rejects_with_json_paths():
    d = tempfile.mkdtemp()
    for i, (job, err) in enumerate(CASES):
        p = os.path.join(d, "j%d.json" % i)
        with open(p, "w") as f:
            json.dump(job, f)
        r = mayfly("check", p)
        if err is None:
            check(r.returncode == 0, "case %d rejected: %s" % (i, out(r)))
        else:
            check(r.returncode == 2 and err in out(r) and len(out(r).splitlines()) == 1,
                  "case %d: want %r, got %s" % (i, err, out(r)))


def test_schema_agrees_with_check():
    import jsonschema
    schema = json.load(open(os.path.join(ROOT, "docs", "job-schema.json")))
    jsonschema.Draft202012Validator.check_schema(schema)
    v = jsonschema.Draft202012Validator(schema)
    for i, (job, err) in enumerate(CASES):
        errors = list(v.iter_errors(job))
        if err is None:
            check(not errors, "case %d: schema rejects a job mayfly accepts: %s" % (i, errors[:1]))
        else:
            check(errors, "case %d: schema accepts a job mayfly rejects (%s)" % (i, err))


def test_malformed_json_points_at_line():
    d = tempfile.mkdtemp()
    p = os.path.join(d, "bad.json")
    with open(p, "w") as f:
        f.write('{\n  "name": "t",\n  "source": \n}')
    r = mayfly("check", p)
    check(r.returncode == 2 and "malformed JSON near line" in out(r), out(r))
    r = mayfly("check", os.path.join(d, "missing.json"))
    check(r.returncode == 2 and "cannot read" in out(r), out(r))

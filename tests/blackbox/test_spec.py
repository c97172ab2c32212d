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
    (variant(log_max="500MiB"), None),
    (variant(log_max=1 << 20), None),
    (variant(log_max=1000), "$.log_max"),
    (variant(log_max="lots"), "$.log_max"),
    (variant(experiments=[{"name": "lr{lr}", "command": "./t.sh {lr}", "matrix": {"lr": [0.1, 0.01]}}]), None),
    (variant(experiments=[{"name": "a", "command": "x", "matrix": []}]), "$.experiments[0].matrix"),
    (variant(experiments=[{"name": "a", "command": "x", "matrix": {"lr": []}}]), "$.experiments[0].matrix.lr"),
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


def write(d, name, text):
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write(text)
    return p


def test_check_reports_every_error_at_once_with_a_did_you_mean():
    d = tempfile.mkdtemp()
    p = write(d, "bad.json", json.dumps({"name": "bad name!", "source": "s3://bkt/src/x.tar.gz", "results": "s3://bkt/r/",
                                         "experimets": [{"name": "a", "command": "x"}], "on_exit": "explode"}))
    r = mayfly("check", p)
    text = out(r)
    check(r.returncode == 2, text)
    check("$.experimets: unknown key (did you mean 'experiments'?)" in text, text)
    check("$.name: must be 1-64 characters" in text and "$.on_exit" in text and "$.experiments: is required" in text,
          text)
    check(text.splitlines()[-1].endswith("4 errors"), text)


def test_check_takes_a_local_source_from_the_job_files_folder():
    d = tempfile.mkdtemp()
    os.makedirs(os.path.join(d, "jobs", "code"))
    j = dict(BASE, source="code")
    p = write(os.path.join(d, "jobs"), "job.json", json.dumps(j))
    r = mayfly("check", p)
    check(r.returncode == 0 and ": ok (" in out(r), out(r))
    p2 = write(os.path.join(d, "jobs"), "job2.json", json.dumps(dict(BASE, source="no-such-folder")))
    r = mayfly("check", p2)
    check(r.returncode == 2 and "$.source: 'no-such-folder' is neither an s3:// URI nor a local directory" in out(r),
          out(r))


YAML_JOB = """# yaml-language-server: $schema=../docs/job-schema.json
name: grid
source: s3://bkt/src/x.tar.gz
results: s3://bkt/r/
experiments:
  - name: lr{lr}-bs{bs}
    command: [./train.sh, "--lr={lr}", "--bs", "{bs}"]
    matrix:
      lr: [0.1, 0.01]
      bs: [32, 64, 128]
max_runtime: 2h
"""


def test_yaml_grid_expands_and_errors_name_their_line():
    d = tempfile.mkdtemp()
    p = write(d, "job.yaml", YAML_JOB)
    r = mayfly("check", p, "--expand")
    text = out(r)
    check(r.returncode == 0 and "ok (6 experiments" in text, text)
    check("lr0.01-bs128" in text and "./train.sh --lr=0.01 --bs 128" in text, text)
    bad = write(d, "bad.yaml", YAML_JOB.replace("max_runtime: 2h", "max_runtime: soon\non_exit: explode"))
    r = mayfly("check", bad)
    check(r.returncode == 2 and "line 11: $.max_runtime" in out(r) and "line 12: $.on_exit" in out(r), out(r))
    broken = write(d, "broken.yaml", "name: [unclosed\n")
    r = mayfly("check", broken)
    check(r.returncode == 2 and "line 2" in out(r), out(r))


def test_mayfly_run_takes_a_yaml_grid():
    """A hand-run `mayfly run` of a YAML job with a 2 x 3 matrix: six experiments, each with its values."""
    import test_run
    r = test_run.Run({"experiments": [{"name": "x", "command": "true"}]})
    try:
        spec = dict(r.job)
        spec.pop("experiments")
        lines = ["%s: %s" % (k, json.dumps(v)) for k, v in spec.items()]
        lines += ["experiments:", "  - name: lr{lr}-bs{bs}", "    command: echo lr={lr} bs={bs} >> grid.txt",
                  "    matrix: {lr: [0.1, 0.01], bs: [32, 64, 128]}"]
        r.job_path = write(r.dir, "job.yaml", "\n".join(lines) + "\n")
        rc = r.run(timeout=180)
        check(rc == 0, r.stderr)
        st = r.status()
        check(st["outcome"] == "succeeded" and len(st["experiments"]) == 6, json.dumps(st)[:1500])
        with open(os.path.join(r.work, "grid.txt")) as f:
            got = f.read().splitlines()
        check(got == ["lr=%s bs=%d" % (lr, bs) for lr in ("0.1", "0.01") for bs in (32, 64, 128)], repr(got))
    finally:
        r.close()

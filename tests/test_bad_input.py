"""The bad-input matrix: every subcommand against bad input.

Each case must exit with code 2, print exactly one line naming the problem
(no traceback), and leave no output files behind.
"""
import json
import subprocess
import sys

import pytest


HEADER = "run,batch_size,step,tokens,loss,lr\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.csv").write_text("")
    (d / "empty.json").write_text("")
    (d / "bad.csv").write_text("this,is\nnot a log\n")
    (d / "bad.json").write_text("{nope")
    rows = [HEADER] + [f"r{b},{b},{s},{s * b},nan,0.001\n" for b in (1, 2, 4) for s in range(50)]
    (d / "nan.csv").write_text("".join(rows))
    rows = [HEADER] + [f"r{b},{b},{s},{s * b},{3 - s / 100},0.001\n" for b in (0, 2, 4) for s in range(50)]
    (d / "zero_batch.csv").write_text("".join(rows))
    rows = [HEADER] + [f"r{b},{b},{s},{s * b},{1 + 2 / b + 3 * 0.99 ** s:.6f},0.001\n"
                       for b in (2, 4, 8, 16, 32, 64, 128, 256, 512) for s in range(0, 2000, 10)]
    (d / "good.csv").write_text("".join(rows))
    (d / "afile").write_text("a regular file: nothing can be written under it")
    (d / "noresults").mkdir()
    (d / "badfit").mkdir()
    (d / "badfit" / "fit.json").write_text("{broken")
    (d / "badfit" / "es_points.csv").write_text("run,batch_size,target,S,E\n")
    (d / "sched_bad.json").write_text(json.dumps({"unit": "tokens", "segments": [{"from": 0, "batch_size": -4}]}))
    return d


TRAIN = ["train", "--preset", "tiny", "--tokens", "2048", "--seq-len", "32", "--micro-batch", "4",
         "--batch-tokens", "256", "--quiet"]

# (id, argv, words the one-line message must contain, folder that must stay free of files)
CASES = [
    ("derive-unknown", ["derive", "nope"], ["nope"], None),
    ("simulate-zero-batch", ["simulate", "--batch-sizes", "0,4", "--out", "{d}/o1"], ["batch"], "o1"),
    ("simulate-negative-batch", ["simulate", "--batch-sizes", "-5,4", "--out", "{d}/o2"], ["batch"], "o2"),
    ("simulate-target-below-floor", ["simulate", "--targets", "-1", "--out", "{d}/o3"], ["target"], "o3"),
    ("simulate-unwritable", ["simulate", "--out", "{d}/afile/x"], ["afile"], None),
    ("simulate-unstable-lr", ["simulate", "--eta", "5", "--out", "{d}/o4"], ["eta"], "o4"),
    ("fit-missing", ["fit", "{d}/missing.csv", "--out", "{d}/o5"], ["missing.csv"], "o5"),
    ("fit-empty", ["fit", "{d}/empty.csv", "--out", "{d}/o6"], ["empty.csv"], "o6"),
    ("fit-malformed", ["fit", "{d}/bad.csv", "--out", "{d}/o7"], ["bad.csv"], "o7"),
    ("fit-nan-loss", ["fit", "{d}/nan.csv", "--out", "{d}/o8"], ["nan"], "o8"),
    ("fit-zero-batch", ["fit", "{d}/zero_batch.csv", "--out", "{d}/o9"], ["batch"], "o9"),
    ("fit-unknown-law", ["fit", "{d}/good.csv", "--law", "nope", "--out", "{d}/o10"], ["nope"], "o10"),
    ("fit-target-below-floor", ["fit", "{d}/good.csv", "--targets", "0.5", "--out", "{d}/o11"], ["0.5"], "o11"),
    ("fit-unwritable", ["fit", "{d}/good.csv", "--out", "{d}/afile/x"], ["afile"], None),
    ("schedule-missing", ["schedule", "--from", "{d}/missing.json", "--horizon", "1e6", "--out", "{d}/o12"],
     ["missing.json"], "o12"),
    ("schedule-empty", ["schedule", "--from", "{d}/empty.json", "--horizon", "1e6", "--out", "{d}/o13"],
     ["empty.json"], "o13"),
    ("schedule-malformed", ["schedule", "--from", "{d}/bad.json", "--horizon", "1e6", "--out", "{d}/o14"],
     ["bad.json"], "o14"),
    ("schedule-zero-horizon", ["schedule", "--curve", "1,0.5", "--horizon", "0", "--out", "{d}/o15"],
     ["horizon"], "o15"),
    ("schedule-negative-batch", ["schedule", "--steps", "0:-5", "--horizon", "1e6", "--out", "{d}/o16"],
     ["batch"], "o16"),
    ("schedule-unwritable", ["schedule", "--curve", "1,0.5", "--horizon", "1e6", "--out", "{d}/afile/x"],
     ["afile"], None),
    ("report-missing", ["report", "{d}/nowhere"], ["nowhere"], None),
    ("report-no-results", ["report", "{d}/noresults"], ["no results"], "noresults"),
    ("report-malformed", ["report", "{d}/badfit"], ["fit.json"], None),
    ("train-unknown-preset", ["train", "--preset", "huge", "--out", "{d}/o17"], ["huge"], "o17"),
    ("train-zero-batch", [*TRAIN, "--batch-tokens", "0", "--out", "{d}/o18"], ["batch_tokens"], "o18"),
    ("train-negative-batch", [*TRAIN, "--batch-tokens", "-256", "--out", "{d}/o19"], ["batch_tokens"], "o19"),
    ("train-config-missing", [*TRAIN, "--config", "{d}/missing.json", "--out", "{d}/o20"], ["missing.json"], "o20"),
    ("train-config-empty", [*TRAIN, "--config", "{d}/empty.json", "--out", "{d}/o21"], ["empty.json"], "o21"),
    ("train-config-malformed", [*TRAIN, "--config", "{d}/bad.json", "--out", "{d}/o22"], ["bad.json"], "o22"),
    ("train-schedule-malformed", [*TRAIN, "--batch-schedule", "{d}/bad.json", "--out", "{d}/o23"],
     ["bad.json"], "o23"),
    ("train-schedule-negative", [*TRAIN, "--batch-schedule", "{d}/sched_bad.json", "--out", "{d}/o24"],
     ["batch"], "o24"),
    ("train-data-missing", [*TRAIN, "--data", "{d}/nodata", "--out", "{d}/o25"], ["nodata"], "o25"),
    ("train-unwritable", [*TRAIN, "--out", "{d}/afile/x"], ["afile"], None),
    ("validate-unknown", ["validate", "nope", "--out", "{d}/o26"], ["nope"], "o26"),
    ("validate-unknown-tier", ["validate", "sweep", "--tier", "huge", "--out", "{d}/o27"], ["huge"], "o27"),
    ("validate-zero-jobs", ["validate", "sweep", "--tier", "tiny", "--jobs", "0", "--out", "{d}/o28"],
     ["jobs"], "o28"),
    ("validate-unwritable", ["validate", "sweep", "--tier", "tiny", "--out", "{d}/afile/x"], ["afile"], None),
    ("demo-zero-jobs", ["demo", "--jobs", "0", "--out", "{d}/o29"], ["jobs"], "o29"),
    ("demo-unwritable", ["demo", "--out", "{d}/afile/x"], ["afile"], None),
]


def dbs(args):
    return subprocess.run([sys.executable, "-m", "dbs_theory.cli", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(files, case):
    name, argv, words, out = case
    if argv[0] in ("train", "validate"):
        pytest.importorskip("torch")
    r = dbs([a.replace("{d}", str(files)) for a in argv])
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stderr[-1500:])
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-1500:]
    assert all(w.lower() in lines[0].lower() for w in words), lines[0]
    if out:
        left = [p for p in (files / out).rglob("*") if p.is_file()] if (files / out).exists() else []
        assert not left, f"partial output left behind: {left}"


def _train(out, *extra):
    return dbs([*TRAIN, "--out", str(out), *extra])


@pytest.mark.parametrize("kind", ["corrupted", "mismatched"])
def test_resume_from_a_bad_checkpoint(tmp_path, kind):
    pytest.importorskip("torch")
    out = tmp_path / kind
    r = _train(out)
    assert r.returncode == 0, r.stderr
    if kind == "corrupted":
        (out / "ckpt.pt").write_bytes(b"\x00garbage")
        extra = []
    else:
        extra = ["--lr", "0.01"]  # the checkpoint was written with lr 3e-3
    log_before = (out / "log.csv").read_text()
    r = _train(out, "--resume", *extra)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "checkpoint" in lines[0] and ("corrupted" in lines[0] or "different config" in lines[0])
    assert (out / "log.csv").read_text() == log_before  # nothing rewritten

"""Every experiment end to end at ``--tier tiny``: outputs exist, parse and hold sane values.

The paper's claims are not asserted here (tiny runs cannot show them); the
CPU tier is where they are measured.
"""

import json
import math
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("torch")

from dbs_theory.logs.runs import load_runs  # noqa: E402
from validate.experiments import EXPERIMENTS  # noqa: E402
from dbs_theory.measure.verdicts import VERDICTS  # noqa: E402
from validate.experiments.runner import RunSpec, is_done, run_dir, train_runs  # noqa: E402
from validate.experiments.tiers import TIERS, get_tier  # noqa: E402
from validate.experiments.common import config_for, micro_for  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_experiment_outputs(tiny_results, name):
    root, stdout = tiny_results
    d = root / name
    s = json.loads((d / "summary.json").read_text())
    assert s["experiment"] == name and s["tier"] == "tiny" and s["wall_seconds"] >= 0
    assert s["claims"] and all(c["verdict"] in VERDICTS and c["claim"] and c["measured"] for c in s["claims"])
    md = (d / "summary.md").read_text()
    assert md.startswith(f"# {name}") and all(c["verdict"] in md for c in s["claims"])
    assert f"== {name} (tier tiny" in stdout
    logs = sorted((d / "logs").glob("*.csv")) if (d / "logs").exists() else []
    if name != "predict":
        assert logs, "an experiment that trains keeps its logs"
        assert len(logs) == len(list((d / "configs").glob("*.json")))
    for f in logs:
        (run,) = load_runs(f)
        assert run.tokens[-1] > 0 and all(math.isfinite(x) for x in run.loss)


@pytest.mark.slow
def test_sweep_and_schedule_values(tiny_results):
    root, _ = tiny_results
    s = json.loads((root / "sweep" / "summary.json").read_text())
    assert s["batches"] == list(TIERS["tiny"].batches)
    assert len(s["final_loss"]) == len(s["batches"]) and all(0 < v < 6 for v in s["final_loss"].values())
    sch = json.loads((root / "schedule" / "summary.json").read_text())
    sizes = sch["plan"]["sizes"]
    assert sizes == sorted(sizes) and min(TIERS["tiny"].batches) <= sizes[0]  # monotone, inside the grid
    for arm in sch["val_loss"].values():
        assert len(arm) == len(TIERS["tiny"].seeds) and all(0 < v < 6 for v in arm)


@pytest.mark.slow
def test_finished_runs_are_reused(tiny_results):
    root, _ = tiny_results
    stamp = lambda: {p: p.stat().st_mtime_ns for p in (root / "runs").glob("*/log.csv")}
    before = stamp()
    r = subprocess.run(
        [sys.executable, "-m", "dbs_theory.cli", "validate", "sweep", "--tier", "tiny", "--out", str(root), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert stamp() == before  # no run was trained again: every log is untouched


def test_identical_configs_train_once(tmp_path):
    tier = get_tier("tiny").with_(jobs=1)
    cfg = config_for(tier, 512, batch=128)
    a, b = RunSpec("a", cfg), RunSpec("b", cfg)
    dirs = train_runs(tmp_path, [a, b], jobs=1, progress=False)
    assert dirs["a"] == dirs["b"] == run_dir(tmp_path, b)
    assert len(list((tmp_path / "runs").iterdir())) == 1


def test_micro_batch_divides_the_batch():
    tier = get_tier("cpu")
    for B in tier.batches:
        m = micro_for(tier, B)
        assert (B // tier.seq_len) % m == 0 and 1 <= m <= tier.max_micro


def test_unknown_experiment_and_tier_are_one_line_errors(tmp_path):
    for args, word in ((["nope"], "unknown experiment"), (["sweep", "--tier", "huge"], "unknown tier")):
        r = subprocess.run(
            [sys.executable, "-m", "dbs_theory.cli", "validate", *args, "--out", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 2 and word in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_report_of_the_experiments(tiny_results):
    """dbs report on a validate folder: a section per experiment, every figure passes the checks."""
    from dbs_report.report import build_report
    from figcheck import check_figure

    root, _ = tiny_results
    sections = build_report(root)
    names = [s.title.split(" (")[0].replace("validate ", "") for s in sections]
    assert names == list(EXPERIMENTS)  # in the experiments' order
    for s in sections:
        for fig, name, caption in s.figures:
            check_figure(fig, f"{s.title}/{name}")
    r = subprocess.run(
        [sys.executable, "-m", "dbs_theory.cli", "report", str(root)], capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr
    assert (root / "report.html").read_text().count("data:image/png;base64,") >= 9
    md = (root / "report.md").read_text()
    assert "Verdicts of the experiments" in md
    assert md.count("| `") >= sum(
        len(json.loads((root / n / "summary.json").read_text())["claims"]) for n in EXPERIMENTS
    )


@pytest.mark.slow
def test_an_ablation_under_several_seeds_uses_its_own_spread(tiny_results, tmp_path):
    """ablation_seeds = [0, 1]: the cosine ablation trains both arms per seed and its interval counts 2 seeds
    (the tiny runs already trained are reused from a copy of their cache)."""
    shutil.copytree(tiny_results[0] / "runs", tmp_path / "res" / "runs")
    (tmp_path / "two.toml").write_text('base = "tiny"\nablation_seeds = [0, 1]\n')
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "dbs_theory.cli",
            "validate",
            "cosine",
            "--tier-config",
            str(tmp_path / "two.toml"),
            "--out",
            str(tmp_path / "res"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((tmp_path / "res" / "cosine" / "summary.json").read_text())
    (claim,) = s["claims"]
    assert claim["interval"]["n"] == 2 and "2 seeds" in claim["measured"]
    assert len(s["val_dynamic"]) == len(s["val_fixed"]) == 2
    gains = [f - d for f, d in zip(s["val_fixed"], s["val_dynamic"])]
    assert claim["interval"]["mean"] == pytest.approx(sum(gains) / 2, rel=1e-12)
    assert len(list((tmp_path / "res" / "cosine" / "logs").glob("*.csv"))) == 4


def test_the_log_store_serves_another_results_folder_without_training(tmp_path):
    """Runs finished in one results folder are kept in the store (log and records only, compressed); a fresh
    folder restores them instead of training, and --from-logs refuses, by name, a run the store lacks."""
    from validate.experiments.log_store import LogStore
    from validate.experiments.run_cache import config_key

    tier = get_tier("tiny").with_(jobs=1)
    specs = [RunSpec(f"b{b}-wd0.1", config_for(tier, 1024, batch=b)) for b in (128, 256)]  # a dot in a label
    store = LogStore(tmp_path / "store")
    first = train_runs(tmp_path / "a", specs, jobs=1, progress=False, store=store)
    kept = sorted(p.name for p in (tmp_path / "store").iterdir())
    assert kept == sorted(f"{s.label}-{config_key(s.config)}{ext}" for s in specs for ext in (".csv.gz", ".json"))
    second = train_runs(tmp_path / "b", specs, jobs=1, progress=False, store=LogStore(store.path, from_logs=True))
    for s in specs:
        assert (second[s.label] / "log.csv").read_bytes() == (first[s.label] / "log.csv").read_bytes()
        assert not (second[s.label] / "ckpt.pt").exists()  # restored, not trained
        assert is_done(tmp_path / "b", s)
    extra = RunSpec("b512", config_for(tier, 1024, batch=512))
    with pytest.raises(ValueError, match="--from-logs: 1 run.*'b512'"):
        train_runs(tmp_path / "c", specs + [extra], jobs=1, progress=False, store=LogStore(store.path, True))
    assert not (tmp_path / "c").exists()  # refused before anything was written


def test_validate_from_logs_refits_an_experiment_without_training(tmp_path):
    store, a, b = tmp_path / "store", tmp_path / "a", tmp_path / "b"
    cmd = [
        sys.executable,
        "-m",
        "dbs_theory.cli",
        "validate",
        "sweep",
        "--tier",
        "tiny",
        "--quiet",
        "--jobs",
        "1",
        "--logs",
        str(store),
    ]
    r = subprocess.run(cmd + ["--out", str(a)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run(cmd + ["--out", str(b), "--from-logs"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not list(b.glob("runs/*/ckpt.pt"))  # nothing trained
    sa, sb = (json.loads((d / "sweep" / "summary.json").read_text()) for d in (a, b))
    assert sa["claims"] == sb["claims"] and sa["final_loss"] == sb["final_loss"]
    r = subprocess.run(
        cmd[:-2] + ["--out", str(tmp_path / "c"), "--from-logs"], capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 2 and "--from-logs needs a log store" in r.stderr


def test_the_gpu_quick_tier_is_sized_for_eight_minutes():
    """gpu-quick: a valid tier (whole sequences, a stable phase, the budget inside the sweep) whose sweep and two
    arms total at most 4e8 tokens -- 8 minutes at 0.85M tokens/s, below what one H200 trains a 10M-parameter
    bf16 model at."""
    from validate.experiments import sweep

    t = get_tier("gpu-quick")
    assert all(b % t.seq_len == 0 for b in t.batches) and t.warmup < t.sweep_tokens and t.budget <= t.sweep_tokens
    total = sum(s.config.tokens for s in sweep.specs(t)) + 2 * t.budget
    assert total <= 4e8


@pytest.mark.slow
def test_the_gpu_quick_script_runs_its_path_at_tiny_size(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "benchmarks/gpu_quick.py",
            "--tier",
            "tiny",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "out"),
            "--logs",
            str(tmp_path / "store"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "final validation loss best fixed" in r.stdout
    assert len(list((tmp_path / "store").glob("*.csv.gz"))) >= len(TIERS["tiny"].batches) + 1


def test_the_seq_len_jump_difference_pairs_seeds_or_adds_one_seeds_errors():
    from validate.experiments.seq_len import _jump_difference

    two = _jump_difference({0: ((0.1, 0.01), (0.3, 0.02)), 1: ((0.2, 0.01), (0.5, 0.02))})
    assert (two.n, round(two.mean, 12)) == (2, 0.25)  # seq minus micro: 0.2 and 0.3, paired
    one = _jump_difference({7: ((0.1, 0.03), (0.3, 0.04))})
    half = 1.959963984540054 * 0.05  # the two windows' errors in quadrature: sqrt(0.03^2 + 0.04^2)
    assert one.n == 1 and math.isclose(one.mean, 0.2) and math.isclose(one.hi - one.mean, half, rel_tol=1e-6)

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

from dbs_theory.runs import load_runs  # noqa: E402
from validate.experiments import EXPERIMENTS  # noqa: E402
from dbs_theory.verdicts import VERDICTS  # noqa: E402
from validate.experiments.runner import RunSpec, run_dir, train_runs  # noqa: E402
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
    r = subprocess.run([sys.executable, "-m", "dbs_theory.cli", "validate", "sweep", "--tier", "tiny", "--out",
                        str(root), "--quiet"], capture_output=True, text=True, timeout=300)
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
        r = subprocess.run([sys.executable, "-m", "dbs_theory.cli", "validate", *args, "--out", str(tmp_path)],
                           capture_output=True, text=True, timeout=120)
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
    r = subprocess.run([sys.executable, "-m", "dbs_theory.cli", "report", str(root)], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert (root / "report.html").read_text().count("data:image/png;base64,") >= 9
    md = (root / "report.md").read_text()
    assert "Verdicts of the experiments" in md
    assert md.count("| `") >= sum(len(json.loads((root / n / "summary.json").read_text())["claims"])
                                  for n in EXPERIMENTS)


@pytest.mark.slow
def test_an_ablation_under_several_seeds_uses_its_own_spread(tiny_results, tmp_path):
    """ablation_seeds = [0, 1]: the cosine ablation trains both arms per seed and its interval counts 2 seeds
    (the tiny runs already trained are reused from a copy of their cache)."""
    shutil.copytree(tiny_results[0] / "runs", tmp_path / "res" / "runs")
    (tmp_path / "two.toml").write_text('base = "tiny"\nablation_seeds = [0, 1]\n')
    r = subprocess.run([sys.executable, "-m", "dbs_theory.cli", "validate", "cosine", "--tier-config",
                        str(tmp_path / "two.toml"), "--out", str(tmp_path / "res"), "--quiet"],
                       capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((tmp_path / "res" / "cosine" / "summary.json").read_text())
    (claim,) = s["claims"]
    assert claim["interval"]["n"] == 2 and "2 seeds" in claim["measured"]
    assert len(s["val_dynamic"]) == len(s["val_fixed"]) == 2
    gains = [f - d for f, d in zip(s["val_fixed"], s["val_dynamic"])]
    assert claim["interval"]["mean"] == pytest.approx(sum(gains) / 2, rel=1e-12)
    assert len(list((tmp_path / "res" / "cosine" / "logs").glob("*.csv"))) == 4

"""The rules benchmark (sim.rule_chain) and the simulated run that drives online rules (sim.online_run)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dbs_theory.rules.online import OnlineRule, online_rule
from dbs_theory.schedules.lr_plan import LRPlan
from sim import rule_chain as rc
from sim.dynamics import expected_loss
from sim.nqm import NQM
from sim.online_run import online_run
from tests.dbs_cli import dbs


class Recorder(OnlineRule):
    """An online rule that keeps every reading it is given."""

    def __post_init__(self):
        super().__post_init__()
        self.readings = []

    def observe(self, loss, b_simple=math.nan):
        self.readings.append((loss, b_simple))
        super().observe(loss, b_simple)


def test_online_run_reports_the_replicas_loss_and_noise_scale():
    """At a fixed batch, the readings the rule gets average to the exact expected loss, and the two-batch
    B_simple's moving average sits near tr(Sigma) / |G|^2 of the expected state (sum c / sum h^2 m, 99 here):
    its median over the last half was 70-83 on three seeds (a ratio of noisy averages, NaN while |G|^2's
    estimate is negative, as in the trainer); a micro-batch noise of the wrong size moves it 4x."""
    nqm, eta, B, D = NQM.zhang2019(300), 0.5, 8.0, 4e4
    rule = Recorder("noise-scale", B, every=1e12, min_batch=B, max_batch=B)
    sched = online_run(nqm, eta, LRPlan(), D, rule, seed=1)
    assert sched.sizes == (B,)
    loss = np.array([r[0] for r in rule.readings])
    tr = expected_loss(nqm, eta, B, data=D, record_every=1)
    assert loss.size == tr.loss.size - 1
    half = loss.size // 2
    assert np.mean(loss[half:]) == pytest.approx(np.mean(tr.loss[1:][half:]), rel=0.05)
    m = eta * nqm.c / (B * nqm.h * (2 - eta * nqm.h))  # the stationary moments (the run is at its floor)
    want = nqm.c.sum() / np.sum(nqm.h**2 * m)
    b = np.array([r[1] for r in rule.readings[half:]])
    assert np.nanmedian(b) == pytest.approx(want, rel=0.4)


def test_online_rule_is_the_trainers():
    """One constructor: a decision every horizon/50, the cap horizon/10, annealing from the decay's start."""
    rule = online_rule("noise-scale", 64.0, 1e6, LRPlan(decay=0.2), granularity=32.0)
    assert (rule.every, rule.max_batch, rule.min_batch, rule.anneal_from) == (2e4, 1e5, 32.0, pytest.approx(8e5))
    assert online_rule("noise-scale", 64.0, 1e6).anneal_from == pytest.approx(9e5)
    assert online_rule("noise-scale", 64.0, 1e6, LRPlan(shape="cosine")).anneal_from == math.inf


def test_study_resumes_from_its_files(tmp_path):
    """A second study on the same folder rescores nothing: the same rows, none appended."""
    kw = dict(
        budgets=(3e3,), spectra=["Zhang (h = c = 1/i)"], logs=["exact"], rules=["fixed", "late-switch"], out=tmp_path
    )
    first = rc.study(**kw)
    lines = (tmp_path / "rows.jsonl").read_text().count("\n")
    assert len(first) == 4 and lines == 4
    again = rc.study(**kw)
    assert [r["loss"] for r in again] == [r["loss"] for r in first]
    assert (tmp_path / "rows.jsonl").read_text().count("\n") == lines
    s = {(x["plan"], x["rule"]): x for x in rc.summarize(first)}
    assert s["constant", "fixed"]["fixed"] == 1 and s["constant", "late-switch"]["loses"] == 0


def test_summarize_counts_a_loss_to_the_pick_and_an_unavailable_rule():
    row = dict(plan="wsd", logs="exact", rule="r", loss=1.0, gap=0.5, vs_pick=0.0, recommendation="dynamic")
    rows = [row, dict(row, vs_pick=0.03, gap=-0.2), dict(row, loss=math.nan, gap=math.nan, vs_pick=math.nan)]
    s = rc.summarize(rows)[0]
    assert (s["sweeps"], s["unavailable"], s["loses"], s["median_gap"], s["worst_gap"]) == (2, 1, 1, 0.15, -0.2)
    assert s["worst_vs_pick"] == pytest.approx(0.03)
    s = rc.summarize([dict(row, loss=math.nan, note="no Bmin")])[0]
    assert s["sweeps"] == 0 and "n/a" in rc.markdown([s])


def test_the_out_of_family_spectra_are_what_they_say():
    g = rc.gapped(100, gap=(10, 50))
    assert g.h.size == 60 and not np.any(np.isclose(g.h, 20.0**-1.5))
    t = rc.two_band(100)
    assert t.h.size == 100 and t.c[0] / t.h[0] == 4.0 and t.c[-1] / t.h[-1] == pytest.approx(0.05)


def test_dbs_simulate_optimal_refuses_measured(tmp_path):
    r = dbs("simulate", "optimal", "--measured", "--budgets", "1e4", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "dbs simulate rules" in r.stderr

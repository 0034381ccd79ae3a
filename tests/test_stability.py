"""Stable numbers: a loss log rounded differently (1e-10 relative, as a CSV with 10 significant digits
against the doubles a Trainer state holds) changes no reported estimate, interval or status of ``dbs fit``
by more than 1e-6 relative. Flat valleys of the three-phase fit (a phase with no point in it) used to let a
1e-10 change move Sopt by 0.6%."""

import dataclasses
import math
import warnings

import numpy as np
import pytest

from dbs_theory.measure.tabulate import bopt_table
from dbs_theory.logs.runs import Run

REL = 1e-6


def _sweep(seed, linear):
    """Nine runs, batch 8..2048, of ``loss = 2 + 4/B + 3 (1 + D/(B+64)/10)^-0.5`` + N(0, 0.002), logged at
    150 log-spaced steps or every N steps (as trainers log)."""
    rng = np.random.default_rng(seed)
    runs = []
    for B in 8 * 2 ** np.arange(9):
        last = 2e5 / B
        steps = np.unique(np.linspace(1, last, 150).astype(int) if linear else np.geomspace(1, last, 150).astype(int))
        D = steps * float(B)
        loss = 2 + 4 / B + 3 * (1 + D / (B + 64) / 10) ** -0.5 + rng.normal(0, 0.002, D.size)
        runs.append(Run(f"b{B}", float(B), steps.astype(float), D, loss))
    return runs


def _differences(a, b):
    """Every numeric cell, interval end and status of two tables that differs beyond :data:`REL`."""
    out = []
    for ra, rb in zip(a.rows, b.rows):
        for k in sorted(set(ra) | set(rb)):
            x, y = ra.get(k), rb.get(k)
            if isinstance(x, float) and isinstance(y, float):
                if (math.isfinite(x) or math.isfinite(y)) and not math.isclose(x, y, rel_tol=REL, abs_tol=1e-12):
                    out.append((ra["target"], k, x, y))
            elif x != y:
                out.append((ra["target"], k, x, y))
    return out


@pytest.mark.parametrize("seed, linear", [(0, False), (1, True), (2, False)])
def test_a_1e_10_change_of_every_loss_moves_no_estimate(seed, linear):
    runs = _sweep(seed, linear)
    moved = [dataclasses.replace(r, loss=r.loss * (1 + 1e-10)) for r in runs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = bopt_table(runs, None, bootstrap=40, seed=0)
        b = bopt_table(moved, [r["target"] for r in a.rows], bootstrap=40, seed=0)
    assert _differences(a, b) == []
    assert a.verdict == b.verdict

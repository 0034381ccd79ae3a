"""The estimators give the same answers however a log is spaced.

Exact NQM curves (no noise: any error is the estimator's) of two spectra,
logged the ways trainers log: every step; every 10 / 100 / 1000 steps; every
S/8000 steps; 800 log-spaced rows; irregular gaps of 1-50 steps; and
evaluation rows only (``val_loss`` every 250 steps beside a per-step ``loss``).
The exact answers come from the simulator: first hitting steps from
``sim.steps_to_target`` and the envelope's Bopt(D) from a direct minimisation
of the expected loss over continuous B (``sim.schedule_eval.best_fixed_batch``).

Tolerances: a first hitting step within one logging interval plus 2%; the
envelope's Bopt within 10% wherever the best grid batch has at least 20 logged
rows before D.
"""

import numpy as np
import pytest

import sim
from dbs_theory.measure.curves import es_points
from dbs_theory.measure.estimators import envelope_bopt
from dbs_theory.logs.runs import Run
from sim.frontier import loss_at_steps, steps_to_target
from sim.schedule_eval import nqm_best_fixed_batch

BATCHES = 2.0 ** np.arange(11)  # 1 .. 1024 examples
BUDGET = 1e5  # examples; the smallest batch runs 1e5 steps
MODES = ["every1", "every10", "every100", "every1000", "S/8000", "log800", "irregular", "val250"]
D = np.geomspace(1e3, 8e4, 7)
DENSE = ("every1", "every10", "S/8000", "log800", "irregular")


def _steps(mode, total, rng):
    if mode.startswith("every"):
        k = int(mode[5:])
        return np.unique(np.r_[np.arange(0, total + 1, k), total])
    if mode == "S/8000":
        return np.unique(np.r_[np.arange(0, total + 1, max(1, total // 8000)), total])
    if mode == "log800":
        return np.unique(np.r_[0, np.round(np.geomspace(1, total, 800)), total])
    if mode == "irregular":
        return np.unique(np.r_[0, np.minimum(np.cumsum(rng.integers(1, 51, total // 25 + 2)), total), total])
    raise ValueError(mode)


def _sweep(curves, mode, seed=0):
    """One exact run per batch, logged in ``mode`` (``val250``: val_loss every 250 steps, loss every step),
    read off ``curves`` (per batch, the exact loss at every step)."""
    rng = np.random.default_rng(seed)
    runs = []
    for B, full in zip(BATCHES, curves):
        total = full.size - 1
        st = _steps("every1" if mode == "val250" else mode, total, rng).astype(int)
        loss = full[st]
        extra = {}
        if mode == "val250":
            extra["val_loss"] = np.where(st % 250 == 0, loss, np.nan)
        runs.append(Run(f"b{B:g}", float(B), st.astype(float), st * B, loss, extra))
    return runs


def _val_runs(runs):
    """The evaluation rows of ``val250`` runs as runs of their own (what a log of evaluations alone holds)."""
    out = []
    for r in runs:
        ok = np.isfinite(r.extra["val_loss"])
        out.append(Run(r.name, r.batch_size, r.step[ok], r.tokens[ok], r.extra["val_loss"][ok]))
    return out


SPECTRA = {
    "zhang": (sim.NQM.zhang2019(200), 0.5),
    "power1.3": (sim.NQM(h=np.arange(1, 201.0) ** -1.3, c=np.arange(1, 201.0) ** (-1.3 * 0.7)), 0.6),
}


@pytest.fixture(scope="module", params=sorted(SPECTRA))
def spectrum(request):
    nqm, eta = SPECTRA[request.param]
    truth = np.array([nqm_best_fixed_batch(nqm, eta, x)[0] for x in D])
    top = nqm.initial_loss()
    low = min(float(loss_at_steps(nqm, eta, B, [BUDGET // B])[0]) for B in BATCHES[:6])
    targets = np.geomspace(0.6 * top, 1.05 * low, 6)
    curves = [loss_at_steps(nqm, eta, B, np.arange(int(BUDGET // B) + 1.0)) for B in BATCHES]
    return nqm, eta, truth, targets, curves


def _interval(run, S):
    """The logging interval around step ``S``: the gap between the rows that bracket it."""
    k = int(np.clip(np.searchsorted(run.step, S), 1, run.step.size - 1))
    return run.step[k] - run.step[k - 1]


@pytest.mark.parametrize("mode", MODES)
def test_first_hitting_steps_do_not_depend_on_the_log_spacing(spectrum, mode):
    nqm, eta, _, targets, curves = spectrum
    runs = _sweep(curves, mode)
    use = "val_loss" if mode == "val250" else "loss"
    logged = _val_runs(runs) if mode == "val250" else runs
    pts = es_points(runs, targets, use=use)
    assert pts.S.size >= (15 if mode in DENSE else 0), (pts.S.size, pts.excluded[:3])
    by_name = {r.name: r for r in logged}
    for name, B, t, S in zip(pts.run, pts.batch_size, pts.target, pts.S):
        exact = float(steps_to_target(nqm, eta, B, t))
        tol = _interval(by_name[name], exact) + 0.02 * exact
        assert abs(S - exact) <= tol, (mode, name, t, S, exact, tol)


@pytest.mark.parametrize("mode", MODES)
def test_the_envelope_does_not_depend_on_the_log_spacing(spectrum, mode):
    nqm, eta, truth, _, curves = spectrum
    runs = _sweep(curves, mode)
    if mode == "val250":
        runs = _val_runs(runs)
    env = envelope_bopt(runs, D, bootstrap=0)
    checked = 0
    for j, x in enumerate(D):
        losses = [loss_at_steps(nqm, eta, r.batch_size, [x / r.batch_size])[0] for r in runs]  # exact
        best = runs[int(np.argmin(losses))]
        if (best.tokens <= x).sum() < 20:
            continue
        assert env.identified[j], (mode, x, env.reason[j])
        assert env.bopt[j] == pytest.approx(truth[j], rel=0.10), (mode, x, env.bopt[j], truth[j])
        checked += 1
    assert checked >= (3 if mode in DENSE else 0), (mode, checked)


# --- the window itself: its meaning, counted by hand -----------------------------------------------


def test_the_default_window_holds_the_rows_within_ten_percent_of_the_data_either_side():
    """Rows every step (data = step): at D = 1000 the window is [1000/1.1, 1100] = rows 910..1100, 191 rows."""
    from dbs_theory.measure.curves import local_line

    tokens = np.arange(1.0, 5001.0)
    _, rows = local_line(tokens, 1.0 / tokens)
    assert rows[999] == 191
    assert rows[0] == 1 and rows[1] == 1  # [2/1.1, 2.2] holds rows 2 only: too few, the raw row stands


def test_the_start_of_a_log_is_not_padded_with_its_first_value():
    """A curve straight in log data is reproduced from the first row on (padding would drag it up)."""
    from dbs_theory.measure.curves import MIN_ROWS, local_line

    tokens = 16.0 * np.arange(1, 3001)
    line = 4.0 - 0.25 * np.log(tokens)
    curve, rows = local_line(tokens, line)
    np.testing.assert_allclose(curve, line, atol=1e-9)
    assert np.all(rows[rows.size // 2 :] >= MIN_ROWS)


def test_the_window_is_read_in_data_so_a_long_and_a_short_run_smooth_alike():
    """One noisy curve logged every step (long run, batch 1) and every 64 steps' worth of data (batch 64):
    at the same data the two smoothed curves agree within their noise, not within a row count."""
    from dbs_theory.measure.curves import local_line

    rng = np.random.default_rng(0)
    D = np.arange(1.0, 64001.0)
    curve = 3.0 * D**-0.2
    noisy = curve + 0.01 * rng.standard_normal(D.size)
    long_run = local_line(D, noisy)[0]
    short_run = local_line(D[63::64], noisy[63::64])[0]
    at = np.arange(63, D.size, 64)
    late = D[at] > 2e4
    assert np.max(np.abs(long_run[at][late] - curve[at][late])) < 0.002
    assert np.max(np.abs(short_run[late] - curve[at][late])) < 0.006


@pytest.mark.parametrize("spacing, every", [("linear", 7), ("log", None)])
def test_dbs_simulate_writes_logs_the_way_trainers_do(tmp_path, spacing, every, capsys):
    """``--log-every K`` writes a row every K steps (plus the last); ``--log-spacing log`` log-spaced rows."""
    from dbs_theory.logs.runs import load_runs
    from sim.commands import arguments, run

    args = arguments(
        d=50,
        write_log=True,
        log_every=every,
        log_spacing=spacing,
        out=str(tmp_path),
        quiet=True,
        batch_sizes=[2.0, 8.0, 32.0],
        targets=[1.0, 0.5],
    )
    assert run(args) == 0
    for r in load_runs(tmp_path / "runs.csv"):
        gaps = np.diff(r.step)
        if spacing == "linear":
            assert np.all(gaps[:-1] == every) and 1 <= gaps[-1] <= every
        else:
            assert r.step.size <= 402 and (r.step[-1] < 4000 or gaps[-2] > 10 * gaps[1]), r.step[-1]
        np.testing.assert_allclose(r.tokens, r.step * r.batch_size)


def test_logged_steps_linear_and_log():
    from sim.trainer_logs import logged_steps

    lin = logged_steps(1000, every=300)
    np.testing.assert_array_equal(lin, [0, 300, 600, 900, 1000])  # the last step is always logged
    log = logged_steps(100_000, spacing="log", points=400)
    assert log[0] == 0 and log[-1] == 100_000 and log.size <= 401
    assert np.diff(log)[-1] > 100 * np.diff(log)[1]
    with pytest.raises(ValueError, match="spacing"):
        logged_steps(10, spacing="cubic")

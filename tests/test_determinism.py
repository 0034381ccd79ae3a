"""The same input gives the same answer: bit-identical fits across processes, and statuses that do not
hang on a fit's last bits."""

import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import sim
from dbs_theory.measure import tabulate as bt
from dbs_theory.theory.es_laws import ThreePhaseES
from dbs_theory.logs.runs import write_runs
from sim.identify import exact_runs

PROCESSES = 5


def test_dbs_fit_writes_byte_identical_files_in_separate_processes(tmp_path):
    """Exact Zhang NQM logs (d = 100, eta = 0.5, 20 batch sizes half an octave apart from 2, 40 rows each):
    several targets' fits are ill-conditioned, so an error in the last bit can move a fitted Sopt by 10x.

    Each process gets its own hash seed and its own ``MALLOC_PERTURB_`` (glibc then fills freed heap memory
    with that byte), so a result that hangs on set order or on memory nothing wrote differs between them.
    SciPy's MINPACK read such memory (see ``dbs_theory.measure.fit._levenberg_marquardt``): before the fix about
    one process in two wrote a different table here.
    """
    log = tmp_path / "runs.csv"
    write_runs(exact_runs(sim.NQM.zhang2019(100), 0.5, 2.0 ** np.arange(1, 11, 0.5), 1e5, points=40), log)
    procs = []
    for i in range(PROCESSES):
        env = dict(os.environ, PYTHONHASHSEED=str(i), MALLOC_PERTURB_=str(1 + 50 * i))
        cmd = [
            sys.executable,
            "-m",
            "dbs_theory.cli",
            "fit",
            str(log),
            "--bootstrap",
            "8",
            "--seed",
            "3",
            "--out",
            str(tmp_path / f"fit{i}"),
        ]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = []
    for i, p in enumerate(procs):
        stdout, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr
        outs.append(stdout.replace(str(tmp_path / f"fit{i}"), "OUT"))
    names = sorted(f.name for f in (tmp_path / "fit0").iterdir())
    assert names == ["bopt_table.csv", "es_points.csv", "fit.json"]
    for i in range(1, PROCESSES):
        for name in names:
            same = (tmp_path / f"fit{i}" / name).read_bytes() == (tmp_path / "fit0" / name).read_bytes()
            assert same, f"process {i} (PYTHONHASHSEED={i}) wrote a different {name} than process 0"
        assert outs[i] == outs[0], f"process {i} printed a different report than process 0"


def test_the_generated_jacobian_is_its_expressions_and_the_fitted_model():
    """``dbs_theory/theory/_es_jacobian_code.py`` is current (regenerate: python -m dbs_theory.theory._es_jacobian), its
    log E is the model the fitter evaluates, and generating it twice gives the same text."""
    sp = pytest.importorskip("sympy")
    from dbs_theory.theory import _es_jacobian as jac
    from dbs_theory.theory import _es_jacobian_code as code
    from dbs_theory.theory.es_laws import three_phase_data
    from dbs_theory.theory.laws import c1_pieces

    args, pieces, bounds = jac.expressions()
    fresh = {name: sp.lambdify(args, exprs, modules="numpy") for name, exprs in pieces.items()}
    fresh["bounds"] = sp.lambdify((*args[:6], args[7]), list(bounds), modules="numpy")
    S = np.geomspace(0.05, 20.0, 64)
    columns = lambda vals: np.array([np.broadcast_to(v, S.shape) for v in vals], float)
    for x in np.random.default_rng(0).normal(0.0, 1.5, (20, 6)):
        with np.errstate(all="ignore"):
            for name in jac.PIECES:
                np.testing.assert_allclose(
                    columns(getattr(code, name)(*x, S, S.min())),
                    columns(fresh[name](*x, S, S.min())),
                    rtol=1e-8,
                    atol=1e-10,
                    equal_nan=True,
                    err_msg=name,
                )
            np.testing.assert_allclose(code.bounds(*x, S.min()), fresh["bounds"](*x, S.min()), rtol=1e-12)
            logE = jac.c1_log_model_and_jacobian(x, S, S.min())[0]
            np.testing.assert_allclose(logE, np.log(three_phase_data(c1_pieces(x, S.min()), S)), rtol=1e-12, atol=1e-12)
    assert jac.source() == jac.source()


def _status(monkeypatch, S, E, sopt, emin):
    """The status of a target with points ``(S, E)`` whose (stubbed) fit has this ``sopt`` (steps) and ``emin``."""
    law = ThreePhaseES.c1(0.2 * S.min(), 0.5 * S.min(), sopt, 1.5 * S.max(), emin, 0.1 * emin / S.max() ** 2)
    fit = SimpleNamespace(law=law, r2_log=0.99, r2=0.99, dof=S.size - 6, ci={})
    monkeypatch.setattr(bt, "fit_es", lambda *a, **k: fit)
    pts = SimpleNamespace(for_target=lambda t: (S, E, E / S))
    return bt._target_row(pts, 1.0, "three_phase", ("three_phase",), 0, 0)[0]["status"]


@pytest.mark.parametrize("edge", ["smallest step", "largest step", "half the least data"])
def test_a_status_does_not_hang_on_the_last_bits_of_a_fit(monkeypatch, edge):
    """Sopt on the smallest or largest step of the points, or Emin on half their least data: a fit that
    lands there a few ulps either side (another BLAS, another machine) gets the same status, "ok"."""
    S = np.geomspace(10.0, 200.0, 12)
    E = 1e3 + (S - 40.0) ** 2
    statuses = set()
    for ulps in (-8, -1, 0, 1, 8):
        f = 1 + ulps * np.finfo(float).eps
        if edge == "half the least data":
            statuses.add(_status(monkeypatch, S, E, 40.0, 0.5 * E.min() * f))
        else:
            statuses.add(_status(monkeypatch, S, E, (S.min() if edge == "smallest step" else S.max()) * f, 1e3))
    assert statuses == {"ok"}

"""Fast numeric versions of the derived formulas, vectorised over numpy arrays.

Every formula here is a ``sympy.lambdify(..., cse=True)`` export of a field
of :mod:`dbs_theory.derivations`; none is typed in twice. The exports are
generated once into :mod:`dbs_theory.theory._formulas` (``python -m
dbs_theory.derivations.export``), so evaluating a formula never runs sympy;
the tests check the generated code against the derivations.

Units: batch sizes ``B`` in examples, steps ``S`` in optimizer steps, data
``E = B S`` in examples. ``h`` is curvature, ``c`` per-example gradient-noise
variance, ``m0`` the initial second moment of a mode, ``eta`` the (fixed)
learning rate.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from . import _formulas
from ..messages import num

__all__ = [
    "compiled",
    "loss_floor",
    "bmin",
    "moment",
    "mode_loss",
    "stationary_moment",
    "log_contraction",
    "steps_to_target",
    "data_to_target",
    "smin",
    "bopt",
    "three_phase",
    "ModeThreePhase",
    "b_noise",
    "b_simple",
    "hyperbolic_data",
    "check_equivalence",
]


def compiled(name: str):
    """The numpy function of export ``name`` (generated from the derivation: see
    :mod:`dbs_theory.derivations.export`, whose ``field(name)`` is its sympy source)."""
    return getattr(_formulas, name)


def _check_lr(eta, h):
    eh = np.asarray(eta, float) * np.asarray(h, float)
    if not np.all(np.isfinite(eh)) or np.any(eh <= 0) or np.any(eh >= 2):
        bad = float(eh.flat[np.argmax(~((eh > 0) & (eh < 2)))])
        raise ValueError(f"eta*h must lie in (0, 2) for stability; got eta*h={bad:g} (eta={num(eta)})")
    return eh


def _check_positive(name, value):
    arr = np.asarray(value, float)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be positive and finite; got {name}={num(value)}")
    return arr


def _spectral(h, c, eta):
    h = np.atleast_1d(np.asarray(h, float))
    c = np.atleast_1d(np.asarray(c, float))
    if h.shape != c.shape:
        raise ValueError(f"h and c must have the same shape; got {h.shape} and {c.shape}")
    if np.any(c < 0) or not np.all(np.isfinite(c)):
        raise ValueError(f"noise variances c must be finite and >= 0; got min c={num(c.min())}")
    _check_positive("h", h)
    _check_lr(eta, h)
    return float(np.sum(compiled("spectral_term")(h, c, eta)))


def loss_floor(h, c, eta, batch_size, L_irr=0.0):
    """Stable-phase loss floor ``L_irr + (eta/(2B)) sum_i c_i/(2 - eta h_i)``.

    Parameters
    ----------
    h, c : array_like
        Curvatures and per-example noise variances of the modes.
    eta : float
        Fixed learning rate; every ``eta*h_i`` must lie in ``(0, 2)``.
    batch_size : float or array_like
        Batch size ``B`` in examples (> 0).
    L_irr : float
        Irreducible loss.

    Returns
    -------
    float or ndarray
        The floor, broadcast over ``batch_size``.
    """
    Q = _spectral(h, c, eta)
    B = _check_positive("batch_size", batch_size)
    return compiled("floor_Q")(Q, eta, B, L_irr)


def bmin(h, c, eta, target, L_irr=0.0):
    """Smallest batch (examples) whose floor lies below ``target``.

    ``Bmin = eta sum_i c_i/(2 - eta h_i) / (2 (L* - L_irr))``; proportional
    to ``eta``, so it holds only for the learning rate it is evaluated at.
    ``target`` may be an array; each entry must exceed ``L_irr``.
    """
    Q = _spectral(h, c, eta)
    t = np.asarray(target, float)
    if not np.all(np.isfinite(t)) or np.any(t <= L_irr):
        raise ValueError(f"target must exceed L_irr={num(L_irr)} (the floor as B -> inf); got target={num(target)}")
    return compiled("bmin_Q")(Q, eta, L_irr, t)


def moment(t, h, c, eta, batch_size, m0=1.0):
    """Closed-form second moment ``m(t)`` of one mode after ``t`` steps."""
    _check_lr(eta, h)
    a = compiled("a")(h, eta)
    return compiled("m_t")(np.asarray(t, float), a, c, eta, _check_positive("batch_size", batch_size), m0)


def stationary_moment(h, c, eta, batch_size):
    """Fixed point ``m_inf = eta c / (B h (2 - eta h))`` of the second-moment recursion, per mode.

    Plain numpy (no sympy compile: the simulator calls it on its hot path);
    ``tests/test_numeric.py`` checks it against the derivation
    (``dbs derive nqm_mode``). Broadcasts over its arguments; ``B = inf`` or
    ``eta = 0`` gives 0 (no gradient noise). Batch size in examples.
    """
    h, c = np.asarray(h, float), np.asarray(c, float)
    B = np.asarray(batch_size, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = eta * c / (B * h * (2.0 - eta * h))
    return np.where(np.isinf(B) | (eta == 0), 0.0, out)


def log_contraction(h, eta):
    """``log a = 2 log|1 - eta h|`` per mode (``-inf`` where ``eta h = 1``: the mode settles in one step)."""
    r = np.abs(1.0 - eta * np.asarray(h, float))
    with np.errstate(divide="ignore"):
        return np.where(r > 0, 2.0 * np.log(r), -np.inf)


def mode_loss(t, h, c, eta, batch_size, m0=1.0, L_irr=0.0):
    """Expected loss of one mode after ``t`` steps (closed form)."""
    _check_lr(eta, h)
    return compiled("loss_t")(
        np.asarray(t, float), compiled("a")(h, eta), h, c, eta, _check_positive("batch_size", batch_size), m0, L_irr
    )


def steps_to_target(h, c, eta, batch_size, target, m0=1.0, L_irr=0.0, discrete=True, unreachable="raise"):
    """Steps for one mode to reach ``target`` at fixed ``eta`` and batch.

    Parameters
    ----------
    h, c, m0 : float
        Curvature, per-example noise variance, initial second moment.
    eta : float
        Learning rate, ``0 < eta*h < 2``; ``eta*h = 1`` is handled (the mode
        jumps to its floor in one step).
    batch_size : float or array_like
        Batch ``B`` in examples.
    target : float
        Target loss ``L*``.
    discrete : bool
        True (default): the first hitting time of docs/conventions.md, the first integer
        step ``n`` with ``L(n) <= L*``, then linear interpolation on
        ``[n-1, n]``. False: the continuous-``t`` closed form.
    unreachable : {"raise", "inf"}
        What to do when ``target <= floor(B)``.

    Returns
    -------
    float or ndarray
        ``S`` in steps; 0 when the initial loss already meets the target.
    """
    _check_lr(eta, h)
    B = np.asarray(_check_positive("batch_size", batch_size))
    L0 = L_irr + 0.5 * h * m0
    floor = compiled("floor")(h, c, eta, B, L_irr)
    below = (target <= floor) & (L0 > target)
    if np.any(below) and unreachable == "raise":
        worst = float(np.max(np.where(below, floor, -np.inf)))
        raise ValueError(
            f"target={num(target)} is at or below the loss floor {worst:.6g} "
            f"at batch_size={num(batch_size)}; use a larger batch or a higher target"
        )
    ok = ~below & (L0 > target)
    Bs = np.where(ok, B, 1.0)
    a = compiled("a")(h, eta)
    with np.errstate(divide="ignore", invalid="ignore"):
        cont = compiled("S")(a, h, c, eta, Bs, m0, L_irr, np.where(ok, target, L0 * 0.5 + floor * 0.5))
    if discrete:
        n = np.maximum(1.0, np.ceil(np.nan_to_num(cont)))
        Lprev = compiled("loss_t")(n - 1, a, h, c, eta, Bs, m0, L_irr)
        Lnext = compiled("loss_t")(n, a, h, c, eta, Bs, m0, L_irr)
        cont = (n - 1) + (Lprev - target) / (Lprev - Lnext)
    out = np.where(ok, cont, np.where(L0 <= target, 0.0, np.inf))
    return out[()] if out.ndim == 0 else out


def data_to_target(h, c, eta, batch_size, target, m0=1.0, L_irr=0.0, discrete=True, unreachable="raise"):
    """Data ``E = B S`` (examples) for one mode to reach ``target``; see :func:`steps_to_target`."""
    B = np.asarray(batch_size, float)
    return B * steps_to_target(h, c, eta, batch_size, target, m0, L_irr, discrete, unreachable)


def _reduced(h, c, eta, target, m0, L_irr):
    """One mode's reduced quantities; a spectrum (``h`` or ``c`` with more than one entry) is refused: the
    one-mode functions (``smin``, ``bopt``, ``three_phase``) would otherwise return one value per mode."""
    if np.size(h) > 1 or np.size(c) > 1:
        raise ValueError(
            f"this formula is for one mode; got {max(np.size(h), np.size(c))} modes (for a spectrum "
            "use sim.bopt / sim.steps_to_target on sim.NQM; numeric.bmin sums over modes)"
        )
    _check_lr(eta, h)
    q = compiled("q")(h, L_irr, np.asarray(target, float))
    if np.any(q <= 0) or np.any(q >= m0):
        raise ValueError(
            f"target={num(target)} must lie strictly between L_irr={num(L_irr)} "
            f"and the initial loss {num(L_irr + 0.5 * h * m0)}"
        )
    return compiled("K")(h, c, eta), q, compiled("lam")(h, eta), m0


def smin(h, eta, target, m0=1.0, L_irr=0.0):
    """``Smin = log(m0/q)/lam`` (steps): noise-free steps to target, one mode, continuous reading."""
    K, q, lam, m0 = _reduced(h, 1.0, eta, target, m0, L_irr)
    return compiled("S_min")(K, q, lam, m0)


def _root_v(r):
    """Root of the reduced Bopt condition G(v; r) = 0, bracketed in (r/2, r) by the proof."""
    G = compiled("G")
    return optimize.brentq(lambda v: G(v, r), r / 2, r * (1 - 1e-15), xtol=1e-300, rtol=1e-15)


def bopt(h, c, eta, target, m0=1.0, L_irr=0.0):
    """One mode's ``Bopt`` (examples): the batch minimising data to ``target``.

    Solves the reduced first-order condition of
    :func:`dbs_theory.derivations.bopt_condition`; the root is bracketed in
    ``(Bmin, 2 Bmin)`` by the proof there. Vectorised over ``target``.
    Continuous-``t`` reading; ``Bopt`` does not depend on the rate ``lam``,
    so at ``eta*h = 1`` (where every batch needs ``S = 0``) it is the limit
    as ``eta*h -> 1``.
    """
    K, q, lam, m0 = _reduced(h, c, eta, target, m0, L_irr)
    r = np.atleast_1d(q / m0)
    v = np.array([_root_v(float(ri)) for ri in r.ravel()]).reshape(r.shape)
    out = compiled("bopt_v")(K, m0, v)
    return out[0] if np.ndim(target) == 0 else out


#: the keys :func:`three_phase` returned before it returned a :class:`ModeThreePhase` -> its fields
_OLD_KEYS = dict(
    Smin="smin", B_m1="b_m1", B_0="b_0", A1="a1", A0="a0", Bmin="bmin", Bopt="bopt", Sopt="sopt", Emin="emin", C="c"
)


@dataclass(frozen=True)
class ModeThreePhase:
    """The three-phase E(S) coefficients of one mode at a target, continuous-``t`` reading.

    Attributes
    ----------
    smin : steps; b_m1 : examples x steps (``B_-1``); b_0, a0 : examples; a1 = bmin : examples per step;
    bopt : examples; sopt : steps; emin : examples; c : examples per step^2 (the quadratic phase's curvature).
    """

    smin: float
    b_m1: float
    b_0: float
    a1: float
    a0: float
    bmin: float
    bopt: float
    sopt: float
    emin: float
    c: float

    def __getitem__(self, key):
        """Deprecated: the dict keys of old (``tp["Bopt"]``); use the attributes (``tp.bopt``)."""
        warnings.warn(
            f"three_phase(...)[{key!r}] is deprecated; use .{_OLD_KEYS[key]}", DeprecationWarning, stacklevel=2
        )
        return getattr(self, _OLD_KEYS[key])


def three_phase(h, c, eta, target, m0=1.0, L_irr=0.0) -> ModeThreePhase:
    """The three-phase E(S) coefficients of one mode at ``target`` (a :class:`ModeThreePhase`)."""
    K, q, lam, m0 = _reduced(h, c, eta, target, m0, L_irr)
    B_opt = bopt(h, c, eta, target, m0, L_irr)
    S_opt = compiled("S_red")(K, q, lam, m0, B_opt)
    A1 = compiled("A1")(K, q, lam, m0)
    return ModeThreePhase(
        smin=compiled("S_min")(K, q, lam, m0),
        b_m1=compiled("B_m1")(K, q, lam, m0),
        b_0=compiled("B_0")(K, q, lam, m0),
        a1=A1,
        a0=compiled("A0")(K, q, lam, m0),
        bmin=A1,
        bopt=B_opt,
        sopt=S_opt,
        emin=B_opt * S_opt,
        c=compiled("C")(K, q, lam, m0, B_opt),
    )


def b_noise(G2, GHG, trHS):
    """McCandlish's noise scale ``tr(H Sigma) / (G^T H G)`` (examples)."""
    return compiled("B_noise")(G2, GHG, trHS)


def b_simple(trS, G2):
    """The simple noise scale ``tr(Sigma) / |G|^2`` (examples)."""
    return compiled("B_simple")(trS, G2)


def hyperbolic_data(S, Smin, Emin):
    """McCandlish's ``E(S) = Emin S / (S - Smin)``."""
    return compiled("E_of_S")(np.asarray(S, float), Smin, Emin)


def _multimode_loss(tau, h, c, eta, B, m0, L_irr):
    return L_irr + np.sum(compiled("loss_t")(tau, compiled("a")(h, eta), h, c, eta, B, m0, 0.0))


def _multimode_steps(h, c, eta, B, target, m0, L_irr):
    f = lambda tau: _multimode_loss(tau, h, c, eta, B, m0, L_irr) - target
    hi = 1.0
    while f(hi) > 0:
        hi *= 2.0
    return optimize.brentq(f, 0.0, hi, rtol=1e-14)


def check_equivalence(h, c, eta, target, m0=1.0, L_irr=0.0):
    """Numerically check the budget equivalence of :func:`derivations.equivalence`.

    Minimises data-to-target over ``B`` (giving ``Bopt`` and ``Emin``), then
    minimises the loss at the budget ``D = Emin`` over ``B``. Continuous-``t``
    reading, any number of modes with every ``m0_i >= m_inf_i``.

    Returns
    -------
    dict
        ``bopt`` and ``b_budget`` (examples), ``emin`` (examples),
        ``loss_at_budget`` (should equal ``target``) and ``rel_diff``
        ``|b_budget/bopt - 1|``.
    """
    h, c, m0 = (np.atleast_1d(np.asarray(x, float)) for x in (h, c, m0))
    lo = float(bmin(h, c, eta, target, L_irr)) * (1 + 1e-6)
    bounds = (np.log(lo), np.log(lo * 1e4))
    data = lambda lb: np.exp(lb) * _multimode_steps(h, c, eta, np.exp(lb), target, m0, L_irr)
    opt = optimize.minimize_scalar(data, bounds=bounds, method="bounded", options={"xatol": 1e-10})
    emin = float(opt.fun)
    at_budget = lambda lb: _multimode_loss(emin / np.exp(lb), h, c, eta, np.exp(lb), m0, L_irr)
    opt2 = optimize.minimize_scalar(at_budget, bounds=bounds, method="bounded", options={"xatol": 1e-10})
    b1, b2 = float(np.exp(opt.x)), float(np.exp(opt2.x))
    return dict(bopt=b1, emin=emin, b_budget=b2, loss_at_budget=float(opt2.fun), rel_diff=abs(b2 / b1 - 1))

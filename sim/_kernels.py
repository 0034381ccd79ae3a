"""numba kernels: exact hitting times and Monte Carlo SGD on the NQM.

Private: the public wrappers in :mod:`sim.frontier` and :mod:`sim.montecarlo`
validate inputs and document units. Each kernel has a plain numpy reference
in the tests (``tests/naive.py``) or beside its wrapper.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from dbs_theory.theory._kernels import relaxed_schedule_loss  # noqa: F401  (one implementation, in the library)

__all__ = [
    "hit_time",
    "frontier_kernel",
    "frontier_kernel_serial",
    "loss_coefficients",
    "mc_kernel",
    "mc_kernel_noise",
    "splitmix_normals",
]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, inline="always")
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def _fill_normals(state, out):
    """Fill ``out`` with N(0,1) draws from a SplitMix64 stream (Marsaglia polar).

    ``state`` is a length-1 uint64 array, advanced in place, so a replica's
    stream depends only on its own seed and never on thread scheduling.
    """
    n = out.size
    i = 0
    s0 = state[0]
    scale = 1.0 / 9007199254740992.0  # 2**-53
    while i < n:
        s0 += _GOLDEN
        u = (_mix(s0) >> np.uint64(11)) * scale * 2.0 - 1.0
        s0 += _GOLDEN
        v = (_mix(s0) >> np.uint64(11)) * scale * 2.0 - 1.0
        s = u * u + v * v
        if s >= 1.0 or s == 0.0:
            continue
        f = math.sqrt(-2.0 * math.log(s) / s)
        out[i] = u * f
        if i + 1 < n:
            out[i + 1] = v * f
        i += 2
    state[0] = s0


@njit(cache=True)
def splitmix_normals(seed, n):
    """``n`` standard normals from the stream seeded by ``seed`` (for tests and benchmarks)."""
    state = np.empty(1, np.uint64)
    state[0] = _mix(np.uint64(seed))
    out = np.empty(n)
    _fill_normals(state, out)
    return out


@njit(cache=True)
def _loss(tau, w, minf, delta, loga, L_irr, at_floor_if_a0):
    """Expected loss at real step ``tau``; modes with ``a = 0`` sit at their floor for tau > 0."""
    total = L_irr
    for i in range(w.size):
        if loga[i] == -np.inf:
            e = 1.0 if (tau == 0.0 and not at_floor_if_a0) else 0.0
        else:
            e = math.exp(tau * loga[i])
        total += w[i] * (minf[i] + e * delta[i])
    return total


@njit(cache=True, fastmath=True)
def _loss_and_slope(tau, w, minf, delta, loga, L_irr):
    """Continuous loss (a = 0 modes at their floor) and its derivative at ``tau > 0``."""
    f = L_irr
    df = 0.0
    for i in range(w.size):
        f += w[i] * minf[i]
        if loga[i] != -np.inf:
            e = w[i] * delta[i] * math.exp(tau * loga[i])
            f += e
            df += e * loga[i]
    return f, df


@njit(cache=True)
def _newton_root(w, minf, delta, loga, L_irr, target, warm):
    """Newton on the continuous loss from the left of the root: a guess at it (steps).

    ``warm`` (4,): ``warm[0]`` a start left of the root; ``warm[1:]`` a point
    ``(tau, L, dL/dtau)`` evaluated for a higher target, used as the first
    iterate when its loss is still above this target (NaN: none). On return
    ``warm[1:]`` is the last point evaluated, left of this root, for the next
    target. Stops once a step is below ``1e-9 (1 + tau)`` or, in the quadratic
    regime, once the next step (``s_k^3 / s_{k-1}^2``) would be; the exact
    integer bracket that follows depends on the guess only for its cost.
    """
    tau = warm[0]
    prev = np.inf
    use_warm = warm[2] > target
    for _ in range(500):
        if use_warm:
            tau, f, df = warm[1], warm[2], warm[3]
            use_warm = False
        else:
            f, df = _loss_and_slope(tau, w, minf, delta, loga, L_irr)
            warm[1], warm[2], warm[3] = tau, f, df
        f -= target
        if f <= 0.0 or df >= 0.0:
            break
        step = -f / df
        tau += step
        if step <= 1e-9 * (1.0 + tau) or step <= 1e-2 and step**3 <= 1e-9 * prev * prev:
            break
        prev = step
    return tau


@njit(cache=True)
def hit_time(w, minf, delta, loga, L_irr, target, tau0=0.0):
    """First hitting time (docs/conventions.md) when every ``delta = m0 - m_inf >= 0``.

    Newton on the continuous loss, which is convex and decreasing: started
    at or left of the root (``tau0``, e.g. the root for a higher target),
    its iterates rise monotonically to it. Then an exact integer bracket:
    the first integer ``n`` with ``L(n) <= target``, interpolated on ``[n-1, n]``.
    """
    warm = np.full(4, np.nan)
    warm[0] = tau0
    return _hit_time(w, minf, delta, loga, L_irr, target, _loss(0.0, w, minf, delta, loga, L_irr, False), warm)


@njit(cache=True)
def _hit_time(w, minf, delta, loga, L_irr, target, L0, warm):
    """:func:`hit_time` given the initial loss ``L0`` and a Newton start ``warm`` (see :func:`_newton_root`).

    Each loss is evaluated once: the bracket's ends are ``L(n-1)`` and ``L(n)``.
    """
    if L0 <= target:
        return 0.0
    floor = L_irr
    for i in range(w.size):
        floor += w[i] * minf[i]
    # Within rounding of the floor counts as at the floor: reaching it takes forever.
    if target <= floor + 1e-13 * (abs(floor) + abs(L0)):
        return np.inf
    tau = _newton_root(w, minf, delta, loga, L_irr, target, warm)
    # Newton's guess, then an exact bracket [lo, hi] with L(lo) > target >= L(hi)
    # on integers (lo = 0 is the start): one step right, then doubling; narrowed by bisection.
    hi = max(1.0, math.ceil(tau - 1e-7))
    lo = hi - 1.0
    Lhi = _loss(hi, w, minf, delta, loga, L_irr, True)
    Llo = np.nan  # L(lo) once known, for lo >= 1 (tau > 0: the a = 0 modes sit at their floor)
    grow = 1.0
    while Lhi > target:
        lo, hi, Llo = hi, hi + grow, Lhi
        grow = hi
        Lhi = _loss(hi, w, minf, delta, loga, L_irr, True)
    if lo >= 1.0 and np.isnan(Llo):
        Llo = _loss(lo, w, minf, delta, loga, L_irr, True)
        if Llo <= target:
            lo, Llo = 0.0, np.nan
    while hi - lo > 1.0:
        mid = math.floor(0.5 * (lo + hi))
        Lmid = _loss(mid, w, minf, delta, loga, L_irr, True)
        if Lmid <= target:
            hi, Lhi = mid, Lmid
        else:
            lo, Llo = mid, Lmid
    n = hi
    prev = (
        L0
        if n == 1.0
        else (Llo if lo == n - 1.0 and not np.isnan(Llo) else _loss(n - 1.0, w, minf, delta, loga, L_irr, False))
    )
    return (n - 1.0) + (prev - target) / (prev - Lhi)


@njit(cache=True)
def _pair_pass(n, w, minf, delta, loga, inva, L_irr):
    """One pass over the modes at whole step ``n >= 1``: ``(L(n), L'(n), L(n-1), L'(n-1))``.

    ``a^(n-1) = a^n / a`` (``inva = 1/a``), so both ends of the bracket cost one
    exponential per mode; ``L'`` is the continuous loss's slope. Modes with
    ``a = 0`` sit at their floor (``L(n-1)`` is only read for ``n >= 2``).
    """
    fl = L_irr
    f1 = 0.0
    d1 = 0.0
    f0 = 0.0
    d0 = 0.0
    for i in range(w.size):
        fl += w[i] * minf[i]
        if loga[i] != -np.inf:
            e = w[i] * delta[i] * math.exp(n * loga[i])
            e0 = e * inva[i]
            f1 += e
            d1 += e * loga[i]
            f0 += e0
            d0 += e0 * loga[i]
    return fl + f1, d1, fl + f0, d0


@njit(cache=True)
def _hit_time_pairs(w, minf, delta, loga, inva, L_irr, target, L0, floor, warm):
    """:func:`_hit_time` with one mode pass per Newton step (monotone case; NaN: use :func:`_hit_time`).

    Newton on the continuous loss (convex, falling) from the left of the root
    stays left of it; each iterate is rounded up to a whole step ``n`` and one
    :func:`_pair_pass` gives ``L(n)``, ``L(n-1)`` and the slope at ``n``: if
    ``L(n) <= target < L(n-1)`` the first hit is ``n``, else Newton goes on
    from ``n``. ``warm`` (6,): two points ``(tau, L, L')`` left of the last
    root (``n-1`` and ``n``) for the next, lower target.
    """
    if warm[4] > target:
        tau, f, df = warm[3], warm[4], warm[5]
    elif warm[1] > target:
        tau, f, df = warm[0], warm[1], warm[2]
    else:
        tau = 0.0
        f, df = _loss_and_slope(0.0, w, minf, delta, loga, L_irr)
    for _ in range(500):
        if f <= target or df >= 0.0:
            n = max(1.0, math.ceil(tau))
        else:
            n = max(1.0, math.ceil(tau + (target - f) / df - 1e-9 * (1.0 + tau)))
        L1, d1, Lp, dp = _pair_pass(n, w, minf, delta, loga, inva, L_irr)
        if n == 1.0:
            Lp, dp = L0, np.nan
        if L1 <= target:
            if Lp <= target:
                return np.nan  # rounding put the guess past the root: let the exact bracket decide
            warm[0], warm[1], warm[2] = n - 1.0, (Lp if n > 1.0 else np.nan), dp
            warm[3], warm[4], warm[5] = n, L1, d1
            return (n - 1.0) + (Lp - target) / (Lp - L1)
        if n <= tau:
            return np.nan  # no progress
        tau, f, df = n, L1, d1
    return np.nan


@njit(cache=True)
def _frontier_setup(h, weights, eta):
    """Per-mode log-contractions ``2 log|1 - eta h|`` and loss weights ``counts h / 2``."""
    d = h.size
    loga = np.empty(d)
    w = np.empty(d)
    for i in range(d):
        r = abs(1.0 - eta * h[i])
        loga[i] = 2.0 * math.log(r) if r > 0.0 else -np.inf
        w[i] = 0.5 * weights[i] * h[i]
    return loga, w


@njit(cache=True)
def _frontier_row(h, c, m0, eta, B, loga, w, targets, L_irr, out_row):
    """``out_row[k]``: steps to ``targets[k]`` at batch ``B`` (examples), monotone case.

    Highest target first, each warm-started from the last: :func:`_hit_time_pairs`
    (one mode pass per Newton step), falling back to :func:`_hit_time` where it
    declines.
    """
    d = h.size
    minf = np.empty(d)
    delta = np.empty(d)
    inva = np.empty(d)
    for i in range(d):
        minf[i] = eta * c[i] / (B * h[i] * (2.0 - eta * h[i]))  # numeric.stationary_moment, inlined for numba
        delta[i] = m0[i] - minf[i]
        inva[i] = math.exp(-loga[i]) if loga[i] != -np.inf else 0.0
    L0 = _loss(0.0, w, minf, delta, loga, L_irr, False)
    floor = L_irr
    for i in range(d):
        floor += w[i] * minf[i]
    warm = np.full(6, np.nan)
    order = np.argsort(-targets)  # highest target first: each root warm-starts the next
    for k in order:
        t = targets[k]
        if L0 <= t:
            out_row[k] = 0.0
            continue
        if t <= floor + 1e-13 * (abs(floor) + abs(L0)):
            out_row[k] = np.inf
            continue
        S = _hit_time_pairs(w, minf, delta, loga, inva, L_irr, t, L0, floor, warm)
        if np.isnan(S):
            old = np.full(4, np.nan)
            old[0] = 0.0
            S = _hit_time(w, minf, delta, loga, L_irr, t, L0, old)
        out_row[k] = S


@njit(cache=True, parallel=True)
def frontier_kernel(h, c, m0, weights, eta, batch_sizes, targets, L_irr, out):
    """``out[b, k]``: steps to ``targets[k]`` at ``batch_sizes[b]`` (monotone case), parallel over batches."""
    loga, w = _frontier_setup(h, weights, eta)
    for b in prange(batch_sizes.size):
        _frontier_row(h, c, m0, eta, batch_sizes[b], loga, w, targets, L_irr, out[b])


@njit(cache=True)
def frontier_kernel_serial(h, c, m0, weights, eta, batch_sizes, targets, L_irr, out):
    """:func:`frontier_kernel` on one thread: for a single batch, where a parallel launch costs
    more than it saves (and, on a busy machine, waits for a second core)."""
    loga, w = _frontier_setup(h, weights, eta)
    for b in range(batch_sizes.size):
        _frontier_row(h, c, m0, eta, batch_sizes[b], loga, w, targets, L_irr, out[b])


@njit(cache=True)
def loss_coefficients(wm, wq, loga, steps, out):
    """Expected loss after ``steps[j]`` steps at any batch ``B``: ``L_irr + out[0, j] + out[1, j] / B``.

    The loss at a fixed step is affine in ``1/B``. Per mode, with ``w = counts h / 2``:
    ``wm = w m0``, ``wq = w eta c / (h (2 - eta h))`` (``B m_inf``, examples) and
    ``loga = 2 log|1 - eta h|`` (``-inf`` where ``eta h = 1``). ``steps`` are whole
    steps ``n >= 0``; ``out[0] = sum wm a^n`` (the noise-free part) and
    ``out[1] = sum wq (1 - a^n)`` (the noise part times ``B``). Serial: a search
    asks for one step at a time, where a parallel launch would cost more than the pass.
    """
    for j in range(steps.size):
        n = steps[j]
        g = 0.0
        b = 0.0
        for i in range(loga.size):
            an = 1.0 if n == 0.0 else math.exp(n * loga[i])
            g += wm[i] * an
            b += wq[i] * (1.0 - an)
        out[0, j] = g
        out[1, j] = b


@njit(cache=True, inline="always")
def _half_sq(h, theta):
    s = 0.0
    for i in range(h.size):
        s += h[i] * theta[i] * theta[i]
    return 0.5 * s


@njit(cache=True)
def _run_replica(h, c, theta, lrs, batches, record, out_row, state, noise_r):
    """One SGD run in place on ``theta``; normals from ``noise_r`` (T, d), or drawn when it is empty."""
    z = np.empty(theta.size)
    j = 0
    if record[0]:
        out_row[0] = _half_sq(h, theta)
        j = 1
    for t in range(lrs.size):
        eta = lrs[t]
        sd = eta / math.sqrt(batches[t])
        if noise_r.shape[0]:
            z[:] = noise_r[t]
        else:
            _fill_normals(state, z)
        for i in range(theta.size):
            theta[i] = (1.0 - eta * h[i]) * theta[i] - sd * math.sqrt(c[i]) * z[i]
        if record[t + 1]:
            out_row[j] = _half_sq(h, theta)
            j += 1


@njit(cache=True, parallel=True)
def mc_kernel(h, c, theta0, lrs, batches, record, seeds, out):
    """SGD on the NQM, one stream per replica, parallel over replicas.

    ``theta0`` (R, d) is copied; ``lrs``/``batches`` (T,) are per-step values;
    ``record`` (T+1,) bool marks the steps (0..T) whose excess loss
    ``1/2 sum h theta^2`` is written, in order, to ``out`` (R, n_records).
    """
    R, d = theta0.shape
    draw = np.empty((0, d))
    for r in prange(R):
        state = np.empty(1, np.uint64)
        state[0] = _mix(seeds[r])
        _run_replica(h, c, theta0[r].copy(), lrs, batches, record, out[r], state, draw)


@njit(cache=True, parallel=True)
def mc_kernel_noise(h, c, theta0, lrs, batches, record, noise, out):
    """:func:`mc_kernel` with pre-drawn standard normals ``noise`` (R, T, d)."""
    state = np.zeros(1, np.uint64)
    for r in prange(theta0.shape[0]):
        _run_replica(h, c, theta0[r].copy(), lrs, batches, record, out[r], state, noise[r])


@njit(cache=True)
def moment_steps(h, c, w, m, lrs, batches, record, out):
    """Advance second moments ``m`` (in place) through per-step ``lrs``/``batches``.

    ``out`` receives ``sum w m`` after each step whose ``record`` flag is set.
    The reference is the plain recursion ``m <- (1 - eta h)^2 m + eta^2 c / B``.
    """
    j = 0
    for t in range(lrs.size):
        eta = lrs[t]
        q = eta * eta / batches[t]
        for i in range(h.size):
            a = 1.0 - eta * h[i]
            m[i] = a * a * m[i] + q * c[i]
        if record[t]:
            s = 0.0
            for i in range(h.size):
                s += w[i] * m[i]
            out[j] = s
            j += 1

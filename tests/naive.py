"""Slow, obviously correct references (stumpy's tests/naive.py idea)."""

import numpy as np

__all__ = ["iterate_moments", "first_hit", "brute_bmin", "affine_loss_coefficients"]


def iterate_moments(h, c, eta, B, m0, steps):
    """Expected loss excess 1/2 sum h m after each of 0..steps steps, one step at a time."""
    h, c, m = (np.atleast_1d(np.asarray(x, float)).copy() for x in (h, c, m0))
    out = [0.5 * np.sum(h * m)]
    for _ in range(steps):
        m = (1 - eta * h) ** 2 * m + eta**2 * c / B
        out.append(0.5 * np.sum(h * m))
    return np.array(out)


def first_hit(losses, target):
    """The first hitting time of docs/conventions.md from a loss sequence indexed by step."""
    idx = np.nonzero(losses <= target)[0]
    if idx.size == 0:
        return np.inf
    n = int(idx[0])
    if n == 0:
        return 0.0
    return (n - 1) + (losses[n - 1] - target) / (losses[n - 1] - losses[n])


def brute_bmin(h, c, eta, target, m0=1.0, steps=10_000_000, lo=1e-6, hi=1e9, iters=200):
    """Smallest B whose loss after `steps` steps is <= target, by bisection on log B.

    The loss after `steps` steps is computed by repeated squaring of the affine
    recursion m <- a m + b (exact for `steps` iterations, O(log steps) work).
    """
    h, c, m0 = (np.atleast_1d(np.asarray(x, float)) for x in (h, c, m0))
    a = (1 - eta * h) ** 2

    def loss(B):
        A, b, n = a.copy(), eta**2 * c / B, steps
        mA, mb = np.ones_like(a), np.zeros_like(a)  # accumulated map m -> mA m + mb
        while n:
            if n & 1:
                mA, mb = A * mA, A * mb + b
            A, b, n = A * A, A * b + b, n >> 1
        return 0.5 * np.sum(h * (mA * m0 + mb))

    for _ in range(iters):
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if loss(mid) > target else (lo, mid)
    return hi


def affine_loss_coefficients(h, c, eta, m0, steps):
    """``(G, beta)`` with loss excess ``G_n + beta_n / B`` after step ``n``, from two plain iterations.

    The moments are affine in ``1/B``: ``G`` is the noise-free run (``B = inf``),
    ``beta`` the run at ``B = 1`` minus it. ``steps`` are whole steps, any order.
    """
    n = np.asarray(steps, int)
    free = iterate_moments(h, c, eta, np.inf, m0, int(n.max()))
    unit = iterate_moments(h, c, eta, 1.0, m0, int(n.max()))
    return free[n], unit[n] - free[n]

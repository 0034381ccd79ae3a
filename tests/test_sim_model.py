"""sim.NQM validation and exact expected dynamics against the step recursion."""

import numpy as np
import pytest

import sim
from dbs_theory.schedules.lr_schedules import cosine, wsd
from sim import NQM


class TestNQM:
    @pytest.mark.parametrize(
        "kwargs, match",
        [
            (dict(h=[1.0, -1.0]), "positive"),
            (dict(h=[1.0, np.nan]), "finite"),
            (dict(h=[1.0, 0.5], c=[1.0, -0.1]), "c must be >= 0"),
            (dict(h=[1.0, 0.5], c=[1.0, 1.0, 1.0]), "shape mismatch"),
            (dict(h=[1.0], m0=[-1.0]), "m0"),
            (dict(h=[1.0], counts=[0.5]), "counts"),
            (dict(h=[1.0], m0=[1.0], mean0=[2.0]), "mean0"),
        ],
    )
    def test_bad_input(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            NQM(**kwargs)

    def test_zhang2019(self):
        n = NQM.zhang2019(100)
        np.testing.assert_allclose(n.h, 1 / np.arange(1, 101))
        np.testing.assert_allclose(n.c, n.h)
        assert n.initial_loss() == pytest.approx(0.5 * np.sum(1 / np.arange(1, 101)))

    def test_binned_counts_cover_every_mode(self):
        n = NQM.zhang2019(10_000, nbins=100)
        assert n.d == 10_000 and n.h.size <= 100
        assert n.expanded().h.size == 10_000

    def test_immutable(self):
        n = NQM.zhang2019(10)
        with pytest.raises(ValueError, match="read-only"):
            n.h[0] = 3.0

    def test_unstable_lr(self):
        with pytest.raises(ValueError, match="unstable"):
            NQM.zhang2019(10).check_stable(2.5)


def step_loop(nqm, lr, batch, steps):
    """Brute force: iterate the moment recursion one step at a time."""
    m, D, out = nqm.m0.copy(), 0.0, []
    w = 0.5 * nqm.weights * nqm.h
    out.append((0, 0.0, nqm.L_irr + w @ m))
    for t in range(steps):
        eta, B = lr(D), batch(D)
        m = (1 - eta * nqm.h) ** 2 * m + eta**2 * nqm.c / B
        D += B
        out.append((t + 1, D, nqm.L_irr + w @ m))
    return np.array(out)


@pytest.mark.parametrize(
    "lr",
    [0.5, wsd(0.5, warmup=500, stable=20_000, decay=5_000, final_ratio=0.1), cosine(0.5, total=30_000, warmup=1_000)],
)
def test_expected_loss_matches_recursion(lr):
    nqm = NQM.power_law(300, 1.3, L_irr=0.1)
    batch = [(0, 8), (4_000, 32), (12_000, 64)]
    lr_f = (lambda D: lr) if isinstance(lr, float) else lr
    b_f = sim.as_schedule(batch)
    brute = step_loop(nqm, lr_f, b_f, 700)
    tr = sim.expected_loss(nqm, lr, batch, steps=700, record_every=1)
    np.testing.assert_array_equal(tr.step, brute[:, 0].astype(int))
    np.testing.assert_allclose(tr.D, brute[:, 1])
    np.testing.assert_allclose(tr.loss, brute[:, 2], rtol=1e-10)


def test_record_at_data_and_budget():
    nqm = NQM.zhang2019(50)
    tr = sim.expected_loss(nqm, 0.5, 10, data=1_000, record_at=[55, 500])
    # first steps where D reaches 55 and 500, plus step 0 and the last
    assert list(tr.D) == [0, 60, 500, 1_000]
    assert tr.step[-1] == 100


def test_plain_callable_without_next_change_is_stepped():
    nqm = NQM.zhang2019(50)
    tr1 = sim.expected_loss(nqm, lambda D: 0.5, lambda D: 16.0, steps=300, record_every=50)
    tr2 = sim.expected_loss(nqm, 0.5, 16, steps=300, record_every=50)
    np.testing.assert_allclose(tr1.loss, tr2.loss, rtol=1e-12)


def test_expected_loss_bad_input():
    nqm = NQM.zhang2019(10)
    with pytest.raises(ValueError, match="steps"):
        sim.expected_loss(nqm, 0.5, 8)
    with pytest.raises(ValueError, match="batch size"):
        sim.expected_loss(nqm, 0.5, 0.0, steps=3)
    with pytest.raises(ValueError, match="unstable"):
        sim.expected_loss(nqm, 3.0, 8, steps=3)

"""Batch-size and learning-rate schedules, the Bopt(D) curve, exports, wall clock, NQM evaluation."""

import json
import math
import warnings

import numpy as np
import pytest
from dbs_cli import dbs
from hypothesis import given, settings, strategies as st

import sim
from dbs_theory.schedules.batch_schedules import (
    BatchSchedule,
    constant_batch,
    dynamic_batch,
    lr_rescale,
    parse_megatron_step_schedule,
    step_batch,
)
from dbs_theory.measure.bopt_curve import LearningRateMismatch, check_lr, fit_bopt_curve
from dbs_theory.theory.es_laws import ThreePhaseES
from dbs_theory.schedules.lr_schedules import constant, cosine, wsd
from dbs_theory.schedules.wallclock import StepTimeModel, fit_step_time, time_optimal_batch


class TestLRSchedules:
    def test_wsd_hand_values(self):
        f = wsd(2.0, warmup=100, stable=800, decay=100, final_ratio=0.1)
        assert [f(0), f(50), f(100), f(899), f(950), f(1000), f(5000)] == pytest.approx(
            [0.0, 1.0, 2.0, 2.0, 2.0 * (1 - 0.9 * 0.5), 0.2, 0.2]
        )
        assert f.next_change(300) == 900 and f.next_change(950) == 950

    def test_cosine_and_constant(self):
        g = cosine(1.0, total=200, warmup=0, final_ratio=0.0)
        assert g(100) == pytest.approx(0.5) and g(200) == 0.0
        assert constant(3e-4)(1e12) == 3e-4

    @pytest.mark.parametrize(
        "call",
        [
            lambda: wsd(-1, 1, 1, 1),
            lambda: wsd(1, 1, 1, 1, final_ratio=2),
            lambda: wsd(1, 1, 1, 1, decay_shape="cubic"),
            lambda: cosine(1, total=10, warmup=20),
            lambda: constant(0),
        ],
    )
    def test_bad_arguments(self, call):
        with pytest.raises(ValueError):
            call()


def curve_f(D):
    return 3.0 * np.asarray(D, float) ** 0.4


class TestBatchSchedules:
    def test_step_batch_paper_example(self):
        s = step_batch([125e9, 250e9, 375e9], [2e6, 4e6, 5e6, 6e6])
        assert [s(0), s(124e9), s(125e9), s(500e9)] == [2e6, 2e6, 4e6, 6e6]

    def test_momentum_one_jumps_to_f(self):
        d = dynamic_batch(
            curve_f,
            interval=1000,
            momentum=1.0,
            initial=5.0,
            granularity=1.0,
            min_batch=1.0,
            max_batch=1e9,
            horizon=20_000,
        )
        for D in (1000, 7000, 19_000):
            assert d(D) == round(curve_f(D))
        assert max(d.starts) < 20_000  # no segment begins at the horizon: the run has no data left there

    def test_momentum_formula(self):
        d = dynamic_batch(
            lambda D: 100.0,
            interval=10,
            momentum=0.5,
            initial=20.0,
            granularity=1.0,
            min_batch=1.0,
            max_batch=1e9,
            horizon=40,
        )
        # b = 20 -> 60 -> 80 -> 90, re-evaluated at 10, 20, 30 (not at the horizon 40: no data is left there)
        assert [d(x) for x in (0, 10, 20, 30, 40)] == [20, 60, 80, 90, 90] and d.starts == (0, 10, 20, 30)

    def test_unrounded_state_does_not_stall(self):
        # each step moves the state by less than half a granule; rounding it would stall at 64
        d = dynamic_batch(
            lambda D: 1e4,
            interval=1,
            momentum=0.001,
            initial=64,
            granularity=64,
            min_batch=64,
            max_batch=1e9,
            horizon=3000,
        )
        assert d(3000) > 64 * 10

    def test_json_round_trip_and_sim_accepts_it(self):
        d = dynamic_batch(
            curve_f,
            interval=1000,
            momentum=0.3,
            initial=5.0,
            granularity=2.0,
            min_batch=2.0,
            max_batch=500,
            horizon=50_000,
            unit="examples",
            lr=0.5,
        )
        back = BatchSchedule.from_json(d.to_json())
        assert back == d
        tr = sim.expected_loss(sim.NQM.zhang2019(50), 0.5, back, data=20_000)
        assert np.all(tr.batch_size == d(tr.D - tr.batch_size))

    @settings(max_examples=60, deadline=None)
    @given(
        st.floats(0.05, 1.0),
        st.floats(1, 1e3),
        st.sampled_from([1.0, 8.0, 64.0]),
        st.floats(1, 100),
        st.floats(100, 1e5),
        st.booleans(),
        st.floats(0.1, 0.9),
    )
    def test_properties(self, momentum, initial, gran, lo, span, monotone, alpha):
        hi = lo + span
        f = lambda D: 0.5 * D**alpha * (1 + 0.3 * math.sin(D / 3000.0))  # not monotone on purpose
        d = dynamic_batch(
            f,
            interval=1000.0,
            momentum=momentum,
            initial=initial,
            granularity=gran,
            min_batch=lo,
            max_batch=hi,
            monotone=monotone,
            horizon=100_000,
        )
        sizes = np.array(d.sizes)
        assert np.all(sizes % gran == 0) and np.all(sizes >= gran)
        # clamped to [lo, hi], then rounded to the nearest multiple of gran (at least gran)
        assert np.all(sizes <= hi) and np.all(sizes >= lo - gran / 2)  # rounding never passes the maximum
        if monotone:
            assert np.all(np.diff(sizes) >= 0)
        D = np.linspace(0, 100_000, 57)
        ref = [d.sizes[max(i for i, a in enumerate(d.starts) if a <= x)] for x in D]  # the segment holding D
        np.testing.assert_array_equal(d(D), ref)
        assert BatchSchedule.from_json(d.to_json()) == d

    @pytest.mark.parametrize(
        "call, name",
        [
            (
                lambda: dynamic_batch(
                    curve_f, interval=0, momentum=0.5, initial=1, granularity=1, min_batch=1, max_batch=10
                ),
                "interval",
            ),
            (
                lambda: dynamic_batch(
                    curve_f, interval=10, momentum=0.0, initial=1, granularity=1, min_batch=1, max_batch=10
                ),
                "momentum",
            ),
            (
                lambda: dynamic_batch(
                    curve_f, interval=10, momentum=1.5, initial=1, granularity=1, min_batch=1, max_batch=10
                ),
                "momentum",
            ),
            (
                lambda: dynamic_batch(
                    curve_f, interval=10, momentum=0.5, initial=1, granularity=1, min_batch=20, max_batch=10
                ),
                "min_batch",
            ),
            (
                lambda: dynamic_batch(
                    curve_f, interval=10, momentum=0.5, initial=-1, granularity=1, min_batch=1, max_batch=10
                ),
                "initial",
            ),
            (lambda: step_batch([10], [1, 2, 3]), "len"),
            (lambda: constant_batch(0), "batch_size"),
            (lambda: BatchSchedule.from_json("{}"), "batch-schedule JSON"),
        ],
    )
    def test_bad_arguments(self, call, name):
        with pytest.raises(ValueError, match=name):
            call()


class TestExports:
    def test_olmo_core_integer_factors(self):
        # switches at whole multiples of the factor's batches run exactly (4 batches of 2048, then 8 of 4096)
        exact = step_batch([8192, 32768], [2048, 4096, 16384]).to_olmo_core()
        assert exact["batch_sizes"] == [2048, 4096, 16384] and exact["error"] == 0
        assert [s["value"] for s in exact["schedule"]] == [0, 8192, 32768]
        # one due within the first batch waits for OLMo-core's next whole pair of batches
        late = step_batch([100], [2048, 4096]).to_olmo_core(horizon=8192)
        assert late["applied"][1]["from"] == 4096 and late["error"] > 0
        paper = step_batch([125e9, 250e9, 375e9], [2e6, 4e6, 5e6, 6e6]).to_olmo_core()
        sizes = paper["batch_sizes"]
        assert all(b % a == 0 for a, b in zip(sizes, sizes[1:])) and paper["error"] > 0
        with pytest.raises(ValueError, match="integer factor"):
            step_batch([125e9], [4e6, 6e6]).to_olmo_core(strict=True)

    def test_megatron_linear_ramp_is_exact_when_representable(self):
        s = step_batch([250, 500, 750], [64, 96, 128, 160], unit="samples")
        s = BatchSchedule(s.starts, s.sizes, "samples", params=dict(horizon=1000.0))
        m = s.to_megatron()
        assert m["args"].startswith("--rampup-batch-size 64 32 ")
        assert m["error"] < 0.01
        with pytest.raises(ValueError, match="seq_len"):
            step_batch([10], [4096, 8192]).to_megatron()

    def test_lr_rescale(self):
        assert lr_rescale("none")(3e-4, 1e9) == 3e-4
        assert lr_rescale("sqrt", 4)(1.0, 16) == pytest.approx(2.0)
        assert lr_rescale("linear", 4)(1.0, 16) == pytest.approx(4.0)
        with pytest.raises(ValueError, match="policy"):
            lr_rescale("cubic")


class TestCurve:
    def test_power_law_recovered_exactly(self):
        D = np.geomspace(1e6, 1e9, 8)
        c = fit_bopt_curve(D, 7.0 * D**0.35, lr=3e-4)
        assert c.params["k"] == pytest.approx(7.0) and c.params["alpha"] == pytest.approx(0.35)
        assert c.r2_log == pytest.approx(1.0) and c.lr == 3e-4

    def test_model_size_term(self):
        D = np.tile(np.geomspace(1e6, 1e9, 5), 2)
        N = np.repeat([1e8, 4e8], 5)
        c = fit_bopt_curve(D, 2.0 * N**0.2 * D**0.3, model_size=N)
        assert c.params["beta"] == pytest.approx(0.2) and c(1e7, N=1e8) == pytest.approx(
            2e8**0 * 2 * 1e8**0.2 * 1e7**0.3
        )

    def test_refuses_far_extrapolation(self):
        D = np.geomspace(1e6, 1e8, 5)
        c = fit_bopt_curve(D, D**0.5)
        c(1.5e8)  # within the factor-2 margin
        with pytest.raises(ValueError, match="extrapolate"):
            c(1e10)
        assert c.with_extrapolation()(1e10) == pytest.approx(1e5)

    def test_monotone_form(self):
        D = np.geomspace(1e3, 1e6, 6)
        c = fit_bopt_curve(D, [1, 2, 1.5, 4, 8, 9], form="monotone")
        vals = c(np.geomspace(1e3, 1e6, 50))
        assert np.all(np.diff(vals) >= -1e-12)

    def test_accepts_frontier_and_table(self):
        fr = sim.es_frontier(sim.NQM.zhang2019(300), 0.5, np.geomspace(1, 300, 10), [0.8, 0.5, 0.3])
        c = fit_bopt_curve(fr)
        assert c.lr == 0.5 and c.D.size == 3

    def test_applying_a_schedule_at_another_rate_warns(self):
        sched = constant_batch(8.0, "examples", lr=0.5)
        with pytest.warns(LearningRateMismatch):
            sim.expected_loss(sim.NQM.zhang2019(20), 0.25, sched, steps=3)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sim.expected_loss(sim.NQM.zhang2019(20), 0.5, sched, steps=3)

    def test_lr_mismatch_warns(self):
        with pytest.warns(LearningRateMismatch, match="3e-4|0.0003"):
            check_lr(3e-4, 6e-4)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_lr(3e-4, 3e-4)


class TestWallClock:
    law = ThreePhaseES.c1(10.0, 30.0, 80.0, 100.0, 5000.0, 0.5)

    def test_fit_step_time(self):
        B = np.array([64, 128, 256, 512.0])
        m = fit_step_time(B, 0.2 + 0.003 * B / 4, n_devices=4)
        assert (m.a, m.b) == (pytest.approx(0.2), pytest.approx(0.003))

    def test_time_proportional_to_data_picks_bopt(self):
        best = time_optimal_batch(self.law, StepTimeModel(0.0, 1.0))  # time = S B = E
        assert best["batch_size"] == pytest.approx(self.law.bopt, rel=0.02)
        assert best["data_overhead"] < 1e-3

    def test_fixed_step_cost_prefers_large_batches_and_overhead_cap(self):
        fast = time_optimal_batch(self.law, StepTimeModel(1.0, 0.0))  # time = S
        assert fast["steps"] < 1.01 * self.law.smin + 1
        capped = time_optimal_batch(self.law, StepTimeModel(1.0, 0.0), max_overhead=0.1)
        assert capped["data_overhead"] <= 0.1 + 1e-9 and capped["batch_size"] < fast["batch_size"]


@pytest.mark.slow
@pytest.mark.parametrize("budget", [3e4, 3e5])
def test_nqm_dynamic_beats_best_fixed_and_k_piece_beats_both(budget):
    """Asserted facts on the default NQM (Zhang et al. 2019, d = 1e4 in 100 bins, eta = 0.5),
    budgets inside the fitted Bopt(D) range: dynamic < best fixed; K-piece <= both."""
    from sim.schedule_eval import compare_schedules

    res = compare_schedules(sim.NQM.zhang2019(10_000, nbins=100), 0.5, budget)
    assert res.dynamic_loss < res.best_fixed_loss
    assert res.k_piece_loss <= min(res.best_fixed_loss, res.dynamic_loss) * (1 + 1e-9)
    assert 0 < res.gap_closed < 1
    assert [r["loss"] for r in res.rows()] == list(res.losses().values())


def test_schedule_cli_from_steps_and_from_frontier(tmp_path):
    r = dbs(
        "schedule",
        "--steps",
        "0:2e6,125e9:4e6,250e9:5e6,375e9:6e6",
        "--horizon",
        "500e9",
        "--seq-len",
        "4096",
        "--out",
        tmp_path / "a",
    )
    assert r.returncode == 0, r.stderr
    assert "--rampup-batch-size" in r.stdout
    sched = BatchSchedule.from_json((tmp_path / "a" / "schedule.json").read_text())
    assert sched.sizes == (2e6, 4e6, 5e6, 6e6)
    sim_out = tmp_path / "sim"
    assert dbs("simulate", "--d", "500", "--quiet", "--out", sim_out).returncode == 0
    r = dbs(
        "schedule",
        "--from",
        sim_out / "frontier.json",
        "--horizon",
        "1e5",
        "--unit",
        "examples",
        "--extrapolate",
        "--lr",
        "0.25",
        "--out",
        tmp_path / "b",
    )
    assert r.returncode == 0, r.stderr
    assert "learning rate 0.5" in r.stderr  # provenance warning: applied at 0.25
    exports = json.loads((tmp_path / "b" / "exports.json").read_text())
    assert exports["curve"]["lr"] == 0.5


def test_schedule_cli_writes_the_megatron_step_schedule(tmp_path):
    # 2097152 tokens = 512 samples of 4096; 125e9 tokens is 30517578.125 samples: rounded up to 30517579
    r = dbs(
        "schedule",
        "--steps",
        "0:2097152,125e9:4194304",
        "--horizon",
        "5e11",
        "--seq-len",
        "4096",
        "--out",
        tmp_path / "a",
    )
    assert r.returncode == 0, r.stderr
    exports = json.loads((tmp_path / "a" / "exports.json").read_text())
    assert exports["megatron"] == "0:512 125000003584:1024"
    assert exports["megatron_args"] == '--step-batch-size-schedule "0:512 125000003584:1024" --seq-length 4096'
    assert exports["megatron_rampup"]["args"].startswith("--rampup-batch-size 512 512 ")
    assert exports["megatron_args"] in r.stdout and "--rampup-batch-size" in r.stdout
    r = dbs(
        "schedule", "--steps", "0:2e6,125e9:4e6", "--horizon", "5e11", "--seq-len", "4096", "--out", tmp_path / "b"
    )  # 2e6 tokens = 488.28125 samples: no exact step schedule
    exports = json.loads((tmp_path / "b" / "exports.json").read_text())
    assert r.returncode == 0 and exports["megatron"] is None and "488.28125 samples" in exports["megatron_note"]
    r = dbs("schedule", "--steps", "0:64,1e6:128", "--unit", "samples", "--horizon", "5e6", "--out", tmp_path / "c")
    exports = json.loads((tmp_path / "c" / "exports.json").read_text())
    assert exports["megatron"] == "0:64 1M:128" and "without --seq-length" in exports["megatron_note"]


@pytest.mark.parametrize(
    "args, match",
    [
        (["--steps", "5:2e6", "--horizon", "1e9"], "start at D = 0"),
        (["--steps", "0:abc", "--horizon", "1e9"], "--steps"),
        (["--curve", "1,0.5", "--horizon", "-3"], "horizon"),
        (["--curve", "1,0.5", "--horizon", "1e6", "--momentum", "2"], "momentum"),
        (["--from", "/nonexistent.json", "--horizon", "1e6"], "no such file"),
    ],
)
def test_schedule_cli_bad_input(tmp_path, args, match):
    r = dbs("schedule", *args, "--out", tmp_path / "o")
    assert r.returncode == 2 and match in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()


def test_rounding_to_the_granularity_never_passes_the_maximum():
    from dbs_theory.schedules.batch_schedules import dynamic_batch

    s = dynamic_batch(
        lambda D: 1e9, interval=10, momentum=1, initial=140, granularity=100, min_batch=1, max_batch=150, horizon=100
    )
    assert max(s.sizes) == 100  # 150 rounds to 200 > 150: the largest multiple under the maximum instead
    with pytest.raises(ValueError, match="granularity=5000 exceeds max_batch=100"):
        dynamic_batch(
            lambda D: 50, interval=10, momentum=1, initial=50, granularity=5000, min_batch=1, max_batch=100, horizon=100
        )


def test_a_schedule_start_must_be_finite():
    from dbs_theory.schedules.batch_schedules import BatchSchedule

    with pytest.raises(ValueError, match="finite"):
        BatchSchedule.from_json(
            '{"unit": "tokens", "segments": [{"from": 0, "batch_size": 4}, {"from": NaN, "batch_size": 8}]}'
        )


def test_a_schedule_in_samples_converts_to_tokens():
    from dbs_theory.schedules.batch_schedules import step_batch

    s = step_batch([100], [8, 16], unit="samples").in_tokens(64)
    assert s.unit == "tokens" and s.starts == (0.0, 6400.0) and s.sizes == (512.0, 1024.0)
    assert s.params["converted_from"] == "samples"


def test_the_megatron_ramp_search_is_bounded_and_exact_on_a_huge_span():
    from dbs_theory.schedules.batch_schedules import step_batch
    from dbs_theory.schedules.exports import ramp_increments as _ramp_increments

    span = 10**18 - 1
    incs = _ramp_increments(span)
    assert incs and all(span % i == 0 and span // i <= 4096 for i in incs)
    out = step_batch([1e9], [1, 1e18], unit="samples").to_megatron()
    assert (out["global_batch_size"] - out["start"]) % out["increment"] == 0


def test_num_formats_numpy_values_for_people():
    import numpy as np

    from dbs_theory.messages import num

    assert num(np.array(0.0)) == "0" and num(np.float64(1.5)) == "1.5" and num("x") == "'x'"


def test_the_bopt_band_interpolates_inside_and_opens_past_the_measured_range():
    """Points at D = 1e3, 1e4, 1e5 with Bopt 10, 20, 80: the steepest slope is log(4)/log(10) (the
    second pair). Past 1e5 the lower edge stays at the last lower bound and the upper edge grows
    with that slope; below 1e3 the mirror image."""
    from dbs_theory.measure.bopt_curve import bopt_band

    D, B = [1e3, 1e4, 1e5], [10.0, 20.0, 80.0]
    lo, hi = [8.0, 16.0, 60.0], [12.0, 25.0, 100.0]
    at = np.array([1e3, 1e4, 1e5, 1e6, 1e2])
    blo, bhi = bopt_band(D, B, lo, hi, at)
    np.testing.assert_allclose(blo[:3], lo)
    np.testing.assert_allclose(bhi[:3], hi)
    slope = np.log(4) / np.log(10)
    assert blo[3] == pytest.approx(60.0) and bhi[3] == pytest.approx(100.0 * 10**slope)
    assert bhi[4] == pytest.approx(12.0) and blo[4] == pytest.approx(8.0 / 10**slope)
    mid_lo, mid_hi = bopt_band(D, B, lo, hi, [10**3.5])
    assert mid_lo[0] == pytest.approx(np.sqrt(8.0 * 16.0)) and mid_hi[0] == pytest.approx(np.sqrt(12.0 * 25.0))


def test_a_band_needs_two_points_with_intervals():
    from dbs_theory.measure.bopt_curve import bopt_band

    with pytest.raises(ValueError, match=">= 2 points"):
        bopt_band([1e3, 1e4], [1.0, 2.0], [0.5, float("nan")], [2.0, 3.0], [1e3])


@pytest.mark.slow
def test_schedules_from_a_measured_sweep_inside_and_past_it():
    """Inside the swept range the envelope's schedule beats the best fixed batch (NQM, d = 1e4 in 100
    bins: +0.044 nats); 3x past it, held at the last measured Bopt, it loses to it (-0.045)."""
    from sim.schedule_eval import measured_schedules

    nqm = sim.NQM.zhang2019(10_000, 100)
    rows = measured_schedules(nqm, 0.5, 1e5, [1e5, 3e5])
    env = {r["inside"]: r for r in rows if r["schedule"] == "envelope (measured)"}
    assert env[True]["gain"] > 0 and env[False]["gain"] < 0


class TestMegatronStepSchedule:
    """``--step-batch-size-schedule`` as Megatron-LM's StepBatchsizeNumMicroBatchesCalculator reads it."""

    @pytest.mark.parametrize(
        "n, text",
        [
            (0, "0"),
            (1000, "1K"),
            (1500, "1500"),
            (2_000_000, "2M"),
            (250_000_000_000, "250B"),
            (1_000_000_001, "1000000001"),
            (10**12, "1T"),
            (10**15, "1000T"),
            (7 * 10**9 + 5000, "7000005K"),
        ],
    )
    def test_suffix_only_for_exact_multiples(self, n, text):
        sched = step_batch([n], [8, 16], unit="samples") if n else constant_batch(16, unit="samples")
        assert sched.to_megatron_step_schedule().split()[-1] == f"{text}:16"

    def test_thresholds_count_tokens_with_seq_len_else_samples(self):
        s = step_batch([1e6], [8, 16], unit="samples")
        assert s.to_megatron_step_schedule() == "0:8 1M:16"
        assert s.to_megatron_step_schedule(seq_len=2048) == "0:8 2048M:16"  # 1e6 samples x 2048 tokens
        t = step_batch([250e9, 500e9], [768 * 4096, 1536 * 4096, 3072 * 4096])  # tokens
        assert t.to_megatron_step_schedule(4096) == "0:768 250000003072:1536 500000002048:3072"
        with pytest.raises(ValueError, match="in tokens: pass seq_len"):
            t.to_megatron_step_schedule()
        with pytest.raises(ValueError, match="seq_len=0 must be a positive whole number"):
            s.to_megatron_step_schedule(seq_len=0)

    def test_threshold_rounds_up_to_the_next_whole_sample_and_keeps_every_reachable_batch(self):
        t = step_batch([250e9], [768 * 4096, 1536 * 4096])
        back = parse_megatron_step_schedule(t.to_megatron_step_schedule(4096), seq_len=4096)
        for n in (0, 61035156, 61035157, 10**9):  # 250e9 / 4096 = 61035156.25 samples
            assert back(n * 4096) == t(n * 4096)
        short = step_batch([100, 200], [4096, 8192, 16384])  # both changes fall inside the first sample
        assert short.to_megatron_step_schedule(4096) == "0:1 4096:4"

    def test_megatron_reads_its_own_example(self):
        tok = parse_megatron_step_schedule("0:768 250B:1536 500B:3072 750B:6144", seq_len=4096)
        assert tok.unit == "tokens" and tok.starts[1] == 61035156 * 4096  # floored to whole samples
        assert tok.sizes == (768 * 4096, 1536 * 4096, 3072 * 4096, 6144 * 4096)
        smp = parse_megatron_step_schedule(" 500b:3072,0:768  1.5K:1536 ")  # commas, lower case, unsorted
        assert smp.unit == "samples" and smp.segments == [(0, 768), (1500, 1536), (500e9, 3072)]

    @pytest.mark.parametrize(
        "text, seq_len, match",
        [
            ("", None, "empty"),
            ("0:8 100", None, "'100' is not THRESHOLD:BATCH_SIZE"),
            ("0:8 1Q:16", None, "'1Q' is not a number"),
            ("5:8", None, "first threshold must be 0"),
            ("0:8 100:16", 4096, "increase strictly"),
            ("0:8 10:0", None, "positive"),
        ],
    )
    def test_parser_refuses_what_megatron_rejects(self, text, seq_len, match):
        with pytest.raises(ValueError, match=match):
            parse_megatron_step_schedule(text, seq_len)

    def test_divisibility_by_micro_batch_times_data_parallel_at_its_boundary(self):
        ok = step_batch([100], [64, 96], unit="samples")
        assert ok.to_megatron_step_schedule(micro_batch_size=4, data_parallel_size=8) == "0:64 100:96"
        for off in (95, 97):
            with pytest.raises(
                ValueError,
                match=f"batch size {off} samples is not divisible by "
                r"micro_batch_size 4 x data_parallel_size 8 = 32",
            ):
                step_batch([100], [64, off], unit="samples").to_megatron_step_schedule(
                    micro_batch_size=4, data_parallel_size=8
                )
        with pytest.raises(ValueError, match="batch size 96 samples .* = 64"):
            ok.to_megatron_step_schedule(micro_batch_size=4, data_parallel_size=16)
        tok = step_batch([4096], [64 * 4096, 96 * 4096])  # tokens: divisibility counts samples
        assert tok.to_megatron_step_schedule(4096, 32, 1) == "0:64 4096:96"

    def test_refuses_batches_that_are_not_whole_samples(self):
        with pytest.raises(ValueError, match="batch size 2000000 tokens is 488.28125 samples at seq_len=4096"):
            step_batch([125e9], [2e6, 4e6]).to_megatron_step_schedule(4096)
        with pytest.raises(ValueError, match="batch size 3.5 samples is 3.5 samples"):
            step_batch([10], [2, 3.5], unit="samples").to_megatron_step_schedule()
        with pytest.raises(ValueError, match="threshold 1152921504606846978 is too large"):  # 2**60 + 2
            step_batch([2.0**60], [3, 6]).to_megatron_step_schedule(3)  # Megatron's float() would misread it

    @pytest.mark.parametrize(
        "sched, seq_len",
        [
            (step_batch([4096 * 61035157, 4096 * 122070313], [768 * 4096, 1536 * 4096, 3072 * 4096]), 4096),
            (step_batch([4096 * 10**6, 4096 * 2 * 10**9], [4096 * 256, 4096 * 1024, 4096 * 1000]), 4096),
            (step_batch([1e3, 2.5e11, 2.5e11 + 1], [8, 16, 32, 64], unit="samples"), None),
            (step_batch([1e6], [8, 16], unit="samples"), 2048),
            (constant_batch(512, unit="examples"), None),
        ],
    )
    def test_round_trip(self, sched, seq_len):
        back = parse_megatron_step_schedule(sched.to_megatron_step_schedule(seq_len), seq_len)
        want = sched.in_tokens(seq_len) if seq_len else sched
        assert back.segments == want.segments and back.unit == ("tokens" if seq_len else "samples")

    @settings(max_examples=150, deadline=None)
    @given(
        gaps=st.lists(st.integers(1, 10**12), min_size=0, max_size=6),
        sizes=st.lists(st.integers(1, 10**6), min_size=7, max_size=7),
        seq_len=st.sampled_from([None, 1, 128, 4096]),
        in_tokens=st.booleans(),
    )
    def test_round_trip_property(self, gaps, sizes, seq_len, in_tokens):
        starts = np.cumsum([0] + gaps).tolist()  # whole samples, strictly increasing
        sched = BatchSchedule(tuple(float(a) for a in starts), tuple(float(b) for b in sizes[: len(starts)]), "samples")
        if in_tokens and seq_len:
            sched = sched.in_tokens(seq_len)
        text = sched.to_megatron_step_schedule(seq_len)
        back = parse_megatron_step_schedule(text, seq_len)
        assert back.segments == (sched.in_tokens(seq_len) if seq_len else sched).segments, text

    @settings(max_examples=100, deadline=None)
    @given(
        starts=st.lists(st.floats(1, 1e7), min_size=1, max_size=5, unique=True),
        sizes=st.lists(st.integers(1, 1000), min_size=6, max_size=6),
        seq_len=st.sampled_from([1, 7, 4096]),
    )
    def test_megatron_uses_our_batch_at_every_reachable_sample_count(self, starts, sizes, seq_len):
        starts = sorted(starts)  # tokens, anywhere (not multiples of seq_len)
        sched = BatchSchedule(
            tuple([0.0] + starts), tuple(float(b * seq_len) for b in sizes[: len(starts) + 1]), "tokens"
        )
        back = parse_megatron_step_schedule(sched.to_megatron_step_schedule(seq_len), seq_len)
        for a in starts:
            for n in {math.floor(a / seq_len) + k for k in (-1, 0, 1, 2)} - {-1}:
                assert back(n * seq_len) == sched(n * seq_len)


@pytest.mark.parametrize(
    "segment, word",
    [
        ({"from": 0, "batch_size": True}, r"segments\[0\].batch_size must be a number"),
        ({"from": 0, "batch_size": "9216"}, "got '9216'"),
        ({"from": "0", "batch_size": 64}, r"segments\[0\].from must be a number"),
    ],
)
def test_a_schedule_json_with_a_non_number_is_refused(segment, word):
    import json

    with pytest.raises(ValueError, match=word):
        BatchSchedule.from_json(json.dumps({"unit": "tokens", "segments": [segment]}))


def test_a_schedule_json_that_claims_monotone_but_falls_is_refused():
    import json

    text = json.dumps(
        {
            "unit": "tokens",
            "params": {"monotone": True},
            "segments": [{"from": 0, "batch_size": 512}, {"from": 100, "batch_size": 256}],
        }
    )
    with pytest.raises(ValueError, match="says monotone but"):
        BatchSchedule.from_json(text)

"""The OLMo-core export is the schedule OLMo-core will run: its BatchSizeSchedulerCallback applies an
increase by ``ratio`` only once the batches processed at the current size are a multiple of ``ratio``."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from dbs_theory.schedules.batch_schedules import olmo_core_applied, step_batch
from dbs_theory.cli import main


def _callback(starts, sizes, horizon):
    """The callback's rule batch by batch, as OLMo-core runs it (the reference for the closed form)."""
    T, b, runs = 0, sizes[0], [(0.0, float(sizes[0]))]
    while T < horizon:
        due = max(k for k in range(len(starts)) if starts[k] <= T)
        target = sizes[due]
        if target < b or (target > b and (T // b) % (target // b) == 0):
            b = target
            runs.append((float(T), float(b)))
        T += b
    return runs


def test_an_increase_waits_for_a_whole_number_of_batches():
    # 480 tokens are 10 batches of 48; a 3x increase waits for 12 (576 tokens); 1200 = 25 batches waits for 26
    assert list(olmo_core_applied([0, 480], [48, 144], 4800).segments) == [(0.0, 48.0), (576.0, 144.0)]
    assert list(olmo_core_applied([0, 1200, 2400], [48, 96, 192], 4800).segments) == [
        (0.0, 48.0),
        (1248.0, 96.0),
        (2496.0, 192.0),
    ]


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 64),
    st.lists(st.tuples(st.integers(1, 4000), st.sampled_from([1, 2, 3, 4, 6, 8])), min_size=1, max_size=4),
)
def test_the_closed_form_matches_the_callback_batch_by_batch(b0, events):
    starts, sizes = [0], [b0]
    for gap, factor in events:
        starts.append(starts[-1] + gap)
        sizes.append(sizes[-1] * factor if factor > 1 else sizes[-1] * 2)
    horizon = starts[-1] * 2 + 100
    got = olmo_core_applied(starts, sizes, horizon).segments
    want = _callback(starts, sizes, horizon)
    assert list(got) == [w for i, w in enumerate(want) if i == 0 or w[1] != want[i - 1][1]]


def test_the_exported_error_is_the_one_olmo_core_runs_over_the_horizon(tmp_path):
    # 48 -> 144 due at 480 runs from 576: 96 tokens at a third of the batch, over 4800: (2/3) * 96 / 4800
    out = step_batch([480], [48, 144]).to_olmo_core(horizon=4800)
    assert out["applied"][1] == {"from": 576.0, "batch_size": 144.0}
    assert abs(out["error"] - (2 / 3) * 96 / 4800) < 2e-4
    assert main(["schedule", "--steps", "0:48,480:144", "--horizon", "4800", "--out", str(tmp_path)]) == 0
    ex = json.loads((tmp_path / "exports.json").read_text())
    assert ex["olmo_core"]["horizon"] == 4800 and abs(ex["olmo_core"]["error"] - out["error"]) < 1e-12

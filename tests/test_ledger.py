"""What the trainer reads, recorded by value: every token position once, in the order the batches ask for.

The corpus is ``arange(N)`` as tokens, so a token's value *is* its position:
recording the values fed to the model (not the arguments passed to the
sampler) catches a sampler that indexes by sequence instead of by token, and a
token counter that advances by the batch asked for instead of the batch run.
"""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from validate import loop as loop_mod, train as train_mod  # noqa: E402
from validate.config import TrainConfig  # noqa: E402
from validate.data import batch_at  # noqa: E402


@pytest.mark.parametrize("block", [0, 32, 64])
def test_batch_at_returns_exactly_the_positions_it_should(block):
    N = 4096
    tokens = np.arange(N, dtype=np.uint16)
    seen = []
    for p, n, L in [(0, 4, 32), (128, 2, 32), (192, 3, 32), (288, 1, 32), (320, 24, 32)]:
        x, y = batch_at(tokens, p, n, L, block=block)
        assert x.shape == y.shape == (n, L)
        if not block:
            np.testing.assert_array_equal(x.ravel(), np.arange(p, p + n * L))  # token positions, in order
        np.testing.assert_array_equal(y, (x + 1) % N)  # targets: the true next token
        seen.append(x.ravel())
    seen = np.concatenate(seen)
    assert np.unique(seen).size == seen.size  # consecutive calls never overlap
    if not block:
        np.testing.assert_array_equal(seen, np.arange(seen.size))


def test_a_whole_run_reads_every_position_once(tmp_path, monkeypatch):
    import csv

    from validate.data import physical

    N = 8000  # a .bin holds its last 5% out: 7600 training positions, more than the run reads
    data = tmp_path / "arange.bin"
    np.arange(N, dtype=np.uint16).tofile(data)
    sched = tmp_path / "s.json"
    # 200 tokens is not a whole number of 32-token sequences: the run uses 192, then 512, then 320.
    sched.write_text(
        json.dumps(
            {
                "unit": "tokens",
                "segments": [
                    {"from": 0, "batch_size": 200},
                    {"from": 1500, "batch_size": 512},
                    {"from": 3500, "batch_size": 320},
                ],
            }
        )
    )
    read = []
    real = loop_mod.batch_at

    def recording(tokens, position, n_seq, seq_len, block=0):
        x, y = real(tokens, position, n_seq, seq_len, block)
        if tokens.size == int(N * 0.95):  # the training stream (evaluation reads the held-out one)
            read.append(x.ravel().copy())  # the values fed to the model, which are their positions
        return x, y

    monkeypatch.setattr(loop_mod, "batch_at", recording)
    cfg = TrainConfig(
        preset="tiny",
        seq_len=32,
        tokens=5000,
        batch_schedule=str(sched),
        data=str(data),
        vocab_size=N,
        data_block=64,
        eval_every=1000,
        out=str(tmp_path / "r"),
    )
    with pytest.warns(UserWarning, match="200 tokens"):
        res = train_mod.train(cfg, progress=False)
    values = np.concatenate(read)
    total = int(res.tokens)
    assert values.size == total and np.unique(values).size == total  # every token the log counts, once
    np.testing.assert_array_equal(values, physical(0, total, int(N * 0.95), 64))  # in the shuffled order
    rows = list(csv.DictReader((tmp_path / "r" / "log.csv").open()))
    steps = [0] + [int(r["tokens"]) for r in rows]
    assert [b - a for a, b in zip(steps, steps[1:])] == [int(r["batch_size"]) for r in rows]
    assert {int(r["batch_size"]) for r in rows} == {192, 512, 320}

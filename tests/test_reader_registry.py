"""A log format is one registered function: detect, --format and load_runs all find it there."""

import numpy as np
import pytest

from dbs_theory.logs import readers
from dbs_theory.logs.runs import LOG_FIELDS, load_runs


@pytest.fixture
def toy_format():
    """A made-up format ('*.toy' files: 'step loss' lines, batch from --batch-size), removed afterwards."""

    @readers.reader("toy", lambda p: p.suffix == ".toy", ("batch_sizes",))
    def read_toy(path, batch_sizes=None):
        step, loss = np.loadtxt(path, ndmin=2).T
        b = (batch_sizes or {})[path.stem]
        return [readers.log_part(path.stem, b, step, step * b, loss)]

    yield read_toy
    del readers.READERS["toy"]


def test_a_registered_format_is_detected_and_read_by_load_runs(tmp_path, toy_format):
    f = tmp_path / "a.toy"
    f.write_text("\n".join(f"{s} {3.0 / s}" for s in range(1, 30)))
    assert readers.detect(f) == "toy"
    (run,) = load_runs(f, batch_sizes={"a": 64.0})
    assert run.name == "a" and run.batch_size == 64 and run.tokens[-1] == 29 * 64
    assert readers.read("toy", f, batch_sizes={"a": 8.0}, loss_tag="ignored")[0][1]["batch_size"][0] == 8


def test_the_builtin_readers_are_registered_in_detection_order():
    assert list(readers.READERS)[:3] == ["hf", "wandb", "tensorboard"]
    assert readers.FORMATS == ("csv", "jsonl", "hf", "wandb", "tensorboard")


def test_the_trainer_writes_the_columns_the_reader_reads():
    loop = pytest.importorskip("validate.loop")
    assert tuple(loop.LOG_FIELDS) == LOG_FIELDS

"""ScheduleTrainer with the real transformers Trainer: a tiny GPT-2 from a config (random init, nothing
downloaded) on CPU follows a step schedule exactly through two batch changes and a resume from checkpoint-6."""

import json
import shutil
import warnings

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")
torch = pytest.importorskip("torch")

from dbs_theory.schedules.accumulation import AccumulationPlan  # noqa: E402
from dbs_theory.schedules.batch_schedules import step_batch  # noqa: E402
from dbs_theory.schedules.lr_schedules import wsd  # noqa: E402
from dbs_theory.logs.runs import load_runs  # noqa: E402

T, MICRO, TOTAL = 16, 2, 1536  # tokens per sample, samples per micro-batch, tokens in the run
#: tokens per step: 64 until 256 tokens, 128 until 768, then 256 (2, 4 and 8 micro-batches of 32 tokens)
SCHED = step_batch([256, 768], [64, 128, 256], unit="tokens")
LR = wsd(1e-3, warmup=128, stable=896, decay=512, final_ratio=0.1)


class Data(torch.utils.data.Dataset):
    """40 samples of T tokens (fewer than the run reads: the stream wraps); records the indices read."""

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randint(0, 64, (40, T), generator=g)
        self.read = []

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        self.read.append(i)
        return {"input_ids": self.x[i], "labels": self.x[i]}


def expected_tokens_per_step():
    """From the schedule alone (tests/logs.py)."""
    from logs import tokens_per_step

    return tokens_per_step(SCHED, TOTAL)


def trainer(out, data):
    from transformers import GPT2Config, GPT2LMHeadModel, TrainingArguments

    from dbs_theory.integrations.hf import ScheduleTrainer

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64, n_positions=32))
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=MICRO,
        learning_rate=1e-3,
        logging_steps=1,
        save_steps=3,
        report_to="none",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
        save_only_model=False,
    )
    plan = AccumulationPlan(SCHED, MICRO, T, lr=LR)
    return ScheduleTrainer(model=model, args=args, train_dataset=data, plan=plan, total_tokens=TOTAL)


def losses(state):
    return [e for e in state["log_history"] if "loss" in e]


def test_trainer_follows_the_schedule_through_two_changes_and_a_resume(tmp_path):
    torch.set_num_threads(1)
    want = expected_tokens_per_step()
    assert want == [64] * 4 + [128] * 4 + [256] * 3
    full = Data()
    t = trainer(tmp_path / "full", full)
    t.train()
    t.save_state()  # trainer_state.json in the output folder, as HF scripts do
    state = json.loads((tmp_path / "full" / "trainer_state.json").read_text())
    rows = losses(state)
    assert [e["step"] for e in rows] == list(range(1, len(want) + 1))
    seen = [e["num_input_tokens_seen"] for e in rows]  # the Trainer's own count of input tokens
    assert list(np.diff([0] + seen)) == want
    assert [e["batch_tokens"] for e in rows] == want and [e["tokens"] for e in rows] == seen
    D = np.cumsum([0] + want[:-1])
    assert np.allclose([e["learning_rate"] for e in rows], [LR(d) for d in D], rtol=1e-6)
    assert full.read == [i % 40 for i in range(TOTAL // T)]  # every sample once, in order, wrapping

    # resume from checkpoint-6 (inside the 128-token stretch) into a fresh output folder
    shutil.copytree(tmp_path / "full" / "checkpoint-6", tmp_path / "resumed" / "checkpoint-6")
    again = Data()
    t = trainer(tmp_path / "resumed", again)
    t.train(resume_from_checkpoint=str(tmp_path / "resumed" / "checkpoint-6"))
    t.save_state()
    rows2 = losses(json.loads((tmp_path / "resumed" / "trainer_state.json").read_text()))
    assert [e["num_input_tokens_seen"] for e in rows2] == seen
    assert again.read == full.read[sum(want[:6]) // T :]  # the data position of step 6, not the start
    assert np.allclose([e["loss"] for e in rows2[6:]], [e["loss"] for e in rows[6:]], rtol=1e-4)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (run,) = load_runs(tmp_path / "resumed")
    assert run.dynamic and list(run.extra["batch_size"]) == want
    assert list(run.tokens) == seen
    fit_and_report_read_it_back(tmp_path, seen)


def fit_and_report_read_it_back(tmp_path, seen):
    """``dbs fit`` on the Trainer's output folder beside a sweep's logs names the run as dynamic (left out of
    the fixed-batch estimates) and stores it; ``dbs report`` draws it."""
    import sim
    from dbs_cli import dbs
    from dbs_theory.logs.runs import write_runs
    from sim.identify import exact_runs

    write_runs(
        exact_runs(sim.NQM.zhang2019(100), 0.5, [2.0, 4.0, 8.0, 16.0, 32.0], 2e3, points=200), tmp_path / "sweep.csv"
    )
    r = dbs("fit", str(tmp_path / "resumed"), str(tmp_path / "sweep.csv"), "--out", str(tmp_path / "fit"))
    assert r.returncode == 0, r.stderr
    assert "dynamic" in r.stdout and "resumed" in r.stdout
    (dyn,) = json.loads((tmp_path / "fit" / "fit.json").read_text())["dynamic_runs"]
    assert dyn["tokens"] == seen and sorted(set(dyn["batch"])) == [64, 128, 256]
    r = dbs("report", str(tmp_path / "fit"))
    assert r.returncode == 0, r.stderr
    assert any("dynamic-runs" in p.name for p in (tmp_path / "fit" / "figures").iterdir())


def test_trainer_refuses_a_plan_the_arguments_contradict(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel, TrainingArguments

    from dbs_theory.integrations.hf import ScheduleTrainer

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64, n_positions=32))
    plan = AccumulationPlan(SCHED, MICRO, T)
    for kw, msg in [
        (dict(gradient_accumulation_steps=4), "gradient_accumulation_steps=4: set it to 1"),
        (dict(per_device_train_batch_size=4), "per_device_train_batch_size=4 but"),
    ]:
        args = TrainingArguments(
            output_dir=str(tmp_path), report_to="none", use_cpu=True, **{"per_device_train_batch_size": MICRO, **kw}
        )
        with pytest.raises(ValueError, match=msg):
            ScheduleTrainer(model=model, args=args, train_dataset=Data(), plan=plan, total_tokens=TOTAL)

"""ScheduleCallback with the real Lightning Trainer (CPU, 1 process): a tiny LightningModule follows a step
schedule exactly through two batch changes and a resume from a step-6 checkpoint."""

import pytest

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

import lightning.pytorch as pl  # noqa: E402

from dbs_theory.schedules.accumulation import AccumulationPlan  # noqa: E402
from dbs_theory.schedules.batch_schedules import step_batch  # noqa: E402
from dbs_theory.integrations.lightning import ScheduleCallback  # noqa: E402
from dbs_theory.schedules.lr_schedules import wsd  # noqa: E402

T, MICRO, TOTAL = 16, 2, 1536  # tokens per sample, samples per micro-batch, tokens in the run
SCHED = step_batch([256, 768], [64, 128, 256], unit="tokens")  # 2, 4 then 8 micro-batches of 32 tokens
LR = wsd(1e-2, warmup=128, stable=896, decay=512, final_ratio=0.1)


class Data(torch.utils.data.Dataset):
    """40 samples of T tokens, each with its index (fewer than the run reads: the stream wraps)."""

    x = torch.randint(0, 64, (40, T), generator=torch.Generator().manual_seed(0))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return i, self.x[i]


class Tiny(pl.LightningModule):
    """Next-token model; records (optimizer steps taken, sample indices, lr) per micro-batch."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.out = torch.nn.Embedding(64, 8), torch.nn.Linear(8, 64)
        self.automatic_optimization = False
        self.seen, self.losses = [], []

    def training_step(self, batch, batch_idx):
        idx, x = batch
        logits = self.out(self.emb(x[:, :-1]))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 64), x[:, 1:].reshape(-1))
        self.seen.append((self.trainer.global_step, idx.tolist(), x.numel()))
        self.losses.append(float(loss))
        self.trainer.dbs.backward(self, loss)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1.0)


def fit(tmp_path, ckpt=None, logger=False):
    cb = ScheduleCallback(AccumulationPlan(SCHED, MICRO, T, lr=LR), TOTAL)
    saver = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=3, save_top_k=-1)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=cb.max_steps,
        callbacks=[cb, saver],
        logger=logger,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    module = Tiny()
    trainer.fit(module, train_dataloaders=cb.dataloader(Data()), ckpt_path=ckpt)
    return module, trainer, cb


def per_step(seen):
    """Tokens each optimizer step consumed, from what the module saw (grouped by steps taken before it)."""
    steps = sorted({s for s, _, _ in seen})
    return steps, [sum(n for s, _, n in seen if s == k) for k in steps]


def expected_tokens_per_step():
    """From the schedule alone (tests/logs.py)."""
    from logs import tokens_per_step

    return tokens_per_step(SCHED, TOTAL)


def test_lightning_follows_the_schedule_through_two_changes_and_a_resume(tmp_path):
    torch.set_num_threads(1)
    want = expected_tokens_per_step()
    assert want == [64] * 4 + [128] * 4 + [256] * 3
    module, trainer, cb = fit(tmp_path / "full")
    steps, tokens = per_step(module.seen)
    assert steps == list(range(len(want))) and tokens == want and trainer.global_step == len(want)
    ids = [i for _, batch, _ in module.seen for i in batch]
    assert ids == [i % 40 for i in range(TOTAL // T)]  # every sample once, in order, wrapping
    assert (cb.plan.tokens, cb.plan.samples, cb.plan.steps) == (TOTAL, TOTAL // T, len(want))

    module2, trainer2, cb2 = fit(tmp_path / "resumed", ckpt=tmp_path / "full" / "ckpt" / "epoch=0-step=6.ckpt")
    steps2, tokens2 = per_step(module2.seen)
    assert steps2 == list(range(6, len(want))) and tokens2 == want[6:]
    assert [i for _, b, _ in module2.seen for i in b] == ids[sum(want[:6]) // T :]  # the data position of step 6
    a, b = module.state_dict(), module2.state_dict()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6  # same trajectory as the uninterrupted run


def test_metrics_csv_has_one_row_per_optimizer_step_in_the_log_format(tmp_path):
    """Lightning counts micro-batches as steps under manual optimization (``module.log`` wrote one row per
    micro-batch): the callback logs each optimizer step once, at its global step, and ``dbs fit``'s reader takes
    a ``CSVLogger``'s metrics.csv as one run whose batches, tokens and rates are the schedule's."""
    import numpy as np

    from dbs_theory.logs.runs import load_runs

    torch.set_num_threads(1)
    want = expected_tokens_per_step()
    module, trainer, _ = fit(tmp_path, logger=pl.loggers.CSVLogger(tmp_path, name="logs"))
    path = tmp_path / "logs" / "version_0" / "metrics.csv"
    with pytest.warns(UserWarning, match="no 'run' column; the file is one run"):
        (run,) = load_runs(path)
    assert run.step.tolist() == list(range(1, len(want) + 1))
    assert run.extra["batch_size"].tolist() == want and run.tokens.tolist() == np.cumsum(want).tolist()
    assert run.extra["lr"].tolist() == pytest.approx([LR(t) for t in np.cumsum([0] + want[:-1])])
    by_step = [np.mean([v for (k, _, _), v in zip(module.seen, module.losses) if k == j]) for j in range(len(want))]
    assert run.loss.tolist() == pytest.approx(by_step, rel=1e-6)  # the step's mean over its micro-batches


def test_callback_refuses_automatic_optimization_and_a_wrong_max_steps(tmp_path):
    cb = ScheduleCallback(AccumulationPlan(SCHED, MICRO, T), TOTAL)
    for max_steps, auto, msg in [
        (cb.max_steps, True, "needs manual optimization"),
        (cb.max_steps + 1, False, "pass max_steps=callback.max_steps"),
    ]:
        module = Tiny()
        module.automatic_optimization = auto
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=1,
            max_steps=max_steps,
            callbacks=[cb],
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
        )
        with pytest.raises(ValueError, match=msg):
            trainer.fit(module, train_dataloaders=cb.dataloader(Data()))


def test_resuming_with_another_schedule_is_refused(tmp_path):
    """A checkpoint's plan state names its schedule: a different one (the steps after it would not be the
    run's, and the run would overshoot its tokens) is refused in one line."""
    from dbs_theory.integrations.lightning import ScheduleCallback

    cb = ScheduleCallback(AccumulationPlan(SCHED, 2, T), total_tokens=TOTAL)
    state = cb.state_dict()
    other = ScheduleCallback(AccumulationPlan(step_batch([1024], [128, 512], unit="tokens"), 2, T), total_tokens=TOTAL)
    with pytest.raises(ValueError, match="another batch schedule"):
        other.load_state_dict(state)


def test_a_resumed_run_under_max_epochs_1_ends_where_the_uninterrupted_one_does(tmp_path):
    """Lightning restores the batches its epoch has counted while the resumed loader holds only the micro-batches
    still to come: the loader's length is the whole run's, so the epoch ends where the plan does (it stopped at
    (4, 192) of (5, 256) when the length was the remainder's)."""
    torch.set_num_threads(1)
    sched = step_batch([64], [32, 64], unit="tokens")  # 1 micro-batch of 32 tokens, then 2

    def run(out, ckpt=None):
        cb = ScheduleCallback(AccumulationPlan(sched, MICRO, T), 256)
        saver = pl.callbacks.ModelCheckpoint(dirpath=out, every_n_train_steps=2, save_top_k=-1)
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=1,
            max_steps=cb.max_steps,
            max_epochs=1,
            logger=False,
            callbacks=[cb, saver],
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        module = Tiny()
        trainer.fit(module, train_dataloaders=cb.dataloader(Data()), ckpt_path=ckpt)
        return module, trainer, cb

    full, t_full, cb_full = run(tmp_path / "full")
    assert (t_full.global_step, cb_full.plan.tokens) == (5, 256)
    resumed, t_res, cb_res = run(tmp_path / "resumed", tmp_path / "full" / "epoch=0-step=2.ckpt")
    assert (t_res.global_step, cb_res.plan.tokens) == (5, 256)
    a, b = full.state_dict(), resumed.state_dict()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6

"""PyTorch Lightning that follows a batch-size schedule: :class:`ScheduleCallback` (the ``lightning`` extra).

Use::

    plan = AccumulationPlan(schedule, micro_batch_size=8, seq_len=1024, world_size=1, lr=wsd(...))
    cb = ScheduleCallback(plan, total_tokens=2e9)
    trainer = L.Trainer(callbacks=[cb], max_steps=cb.max_steps, ...)
    trainer.fit(module, train_dataloaders=cb.dataloader(dataset))     # or fit(..., ckpt_path=...)

    class Module(L.LightningModule):                  # manual optimization, one line in training_step
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False
        def training_step(self, batch, batch_idx):
            loss = ...                                # the micro-batch's mean loss
            self.trainer.dbs.backward(self, loss)     # scales, accumulates, steps at the step's end

Why manual optimization: in automatic optimization Lightning decides
everything from ``trainer.accumulate_grad_batches`` by modulo on the batch
index within the epoch -- when to zero the gradients (``batch_idx %
accumulate == 0``), when to step (``batches ready % accumulate == 0``), the
loss scale (``1 / accumulate``) and DDP's ``no_sync`` -- so a value changed at
an optimizer-step boundary misplaces the next boundaries unless the step
happens to start at a multiple of the new value; its own
``GradientAccumulationScheduler`` therefore changes it only at epoch starts,
useless for one-epoch pretraining. Lightning's documented route for custom
accumulation is manual optimization; :meth:`ScheduleCallback.backward` does
it from the plan: each micro-batch's loss ``/ n`` through ``manual_backward``
(gradient sync skipped on all but the step's last micro-batch under DDP), and
at the step's last micro-batch the plan's LR, ``optimizer.step()``,
``zero_grad()`` and :meth:`AccumulationPlan.advance`. ``trainer.global_step``
counts real optimizer steps, so ``max_steps`` (``cb.max_steps``, the plan's
steps to ``total_tokens``) ends the run.

Resume: the callback's state in the checkpoint is the plan's
(:meth:`AccumulationPlan.state_dict`: tokens, samples, optimizer steps; a
checkpoint is taken between optimizer steps). :meth:`ScheduleCallback.dataloader`'s
sampler reads the position at iteration time (the plan's position plus the
micro-batches already taken in the current step), so a resumed fit, or a new
epoch, continues where the data stood, never from the dataset's start.
(Lightning's ModelCheckpoint warns that under manual optimization a checkpoint
holds the weights after the step: that is the state the plan's counters
describe.) Under DDP pass ``use_distributed_sampler=False`` (the sampler is per rank
already). Logged once per optimizer step to each of the trainer's loggers, at step ``trainer.global_step``:
``loss`` (the step's mean over micro-batches and ranks), ``batch_size`` and ``tokens`` (tokens), ``lr`` -- the
log format, so a ``CSVLogger``'s ``metrics.csv`` is read by ``dbs fit`` as one run. Log nothing per
micro-batch from ``training_step``: Lightning counts micro-batches as steps under manual optimization.
"""

from __future__ import annotations

import contextlib

import lightning.pytorch as pl
from torch.utils.data import DataLoader

from ._stream import rank_micro_batches

__all__ = ["ScheduleCallback", "MicroBatchSampler"]


class MicroBatchSampler:
    """Sample indices of this rank's micro-batches, from the callback's live position to ``max_steps``.

    Used as a ``sampler`` with ``batch_size=micro_batch_size``: consecutive
    ``micro_batch_size`` indices form one micro-batch.
    """

    def __init__(self, callback, n_data: int, seed=None, rank=None):
        self.cb, self.n_data, self.seed, self.rank = callback, int(n_data), seed, rank

    def _micro_batches(self):
        """``(step, first micro-batch)`` pairs from the live position to the end of the run."""
        from ._stream import fresh

        p = fresh(self.cb.plan)
        p.load_state_dict(self.cb.plan.state_dict())
        first = self.cb.micro_done
        while p.steps < self.cb.max_steps:
            yield p.advance(), first
            first = 0

    def __len__(self):
        """Indices of the whole run's micro-batches, from its start whatever the live position: a resumed
        Lightning epoch restores the batches it already counted and ends when its count reaches this length
        (the remainder's length ended a resumed ``max_epochs=1`` run early, at 4 of 5 steps)."""
        from ._stream import fresh

        p, n = fresh(self.cb.plan), 0
        while p.steps < self.cb.max_steps:
            n += p.advance().micro_batches
        return n * self.cb.plan.micro_batch_size

    def __iter__(self):
        rank = self.cb.rank if self.rank is None else self.rank
        for step, first in self._micro_batches():
            for ids in rank_micro_batches(self.cb.plan, step, rank, self.n_data, self.seed, first):
                yield from ids


class _PlanLoader(DataLoader):
    """A ``DataLoader`` Lightning counts as resumable: its position is the callback's (restored with the
    checkpoint before the sampler is iterated), so its own state is empty."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state_dict) -> None:
        pass


class ScheduleCallback(pl.Callback):
    """Gradient accumulation that follows an :class:`~dbs_theory.schedules.accumulation.AccumulationPlan`
    (module docstring).

    Parameters
    ----------
    plan : AccumulationPlan
        ``world_size`` must equal the trainer's; ``micro_batch_size`` (samples) is the dataloader's batch.
    total_tokens : float
        Tokens to train on; :attr:`max_steps` is the plan's optimizer steps to reach them.

    Attributes
    ----------
    max_steps : int     Pass it as ``Trainer(max_steps=...)``.
    micro_done : int    Micro-batches of the current optimizer step already taken (0 at a step boundary).
    """

    def __init__(self, plan, total_tokens):
        self.plan, self.micro_done, self.rank, self.loss_sum = plan, 0, 0, 0.0
        self.max_steps = plan.total_steps(total_tokens)

    def dataloader(self, dataset, seed=None, **kwargs) -> DataLoader:
        """A ``DataLoader`` of this rank's micro-batches (``micro_batch_size`` samples each) in the plan's order;
        ``seed`` shuffles each pass over ``dataset``; other keywords go to ``DataLoader``."""
        sampler = MicroBatchSampler(self, len(dataset), seed)
        return _PlanLoader(dataset, batch_size=self.plan.micro_batch_size, sampler=sampler, **kwargs)

    def setup(self, trainer, pl_module, stage):
        """Check the trainer against the plan (one-line ``ValueError``); expose the callback as ``trainer.dbs``."""
        if pl_module.automatic_optimization:
            raise ValueError(
                "ScheduleCallback needs manual optimization: set self.automatic_optimization = False "
                "in the module and call self.trainer.dbs.backward(self, loss) in training_step"
            )
        if trainer.world_size != self.plan.world_size:
            raise ValueError(
                f"the trainer has {trainer.world_size} processes but the plan's world_size is {self.plan.world_size}"
            )
        if trainer.max_steps != self.max_steps:
            raise ValueError(
                f"Trainer(max_steps={trainer.max_steps}) but the plan reaches total_tokens in "
                f"{self.max_steps} optimizer steps: pass max_steps=callback.max_steps"
            )
        if trainer.world_size > 1 and getattr(trainer._accelerator_connector, "use_distributed_sampler", False):
            raise ValueError(
                "pass Trainer(use_distributed_sampler=False): the callback's sampler already gives "
                "each rank its own micro-batches"
            )
        self.rank = trainer.global_rank
        trainer.dbs = self

    def backward(self, module, loss) -> None:
        """Accumulate one micro-batch's loss (``/ n``); at the step's last micro-batch set the plan's LR, step the
        optimizer, zero the gradients and advance the plan."""
        step = self.plan.peek()
        n, last = step.micro_batches, self.micro_done == step.micro_batches - 1
        no_sync = getattr(module.trainer.strategy.model, "no_sync", None)
        with contextlib.nullcontext() if last or no_sync is None else no_sync():
            module.manual_backward(loss / n)
        self.micro_done += 1
        self.loss_sum = (0.0 if self.micro_done == 1 else self.loss_sum) + loss.detach() / n
        if not last:
            return
        opts = module.optimizers()
        for opt in opts if isinstance(opts, list) else [opts]:
            if step.lr is not None:
                for group in opt.optimizer.param_groups:
                    group["lr"] = step.lr
            opt.step()
            opt.zero_grad()
        self.plan.advance()
        self.micro_done = 0
        self._log_step(module.trainer, step)

    def _log_step(self, trainer, step) -> None:
        """One row per optimizer step in every logger, at ``step = trainer.global_step``, in the log format
        ``dbs fit`` reads: the step's mean ``loss`` (over its micro-batches and ranks), ``batch_size`` and
        ``tokens`` (in tokens) and ``lr``. (``module.log`` in manual optimization counts micro-batches: its
        rows would be one per micro-batch, at a step that is not the optimizer's.)"""
        loss = float(trainer.strategy.reduce(self.loss_sum, reduce_op="mean"))
        row = {
            "loss": loss,
            "batch_size": float(step.tokens),
            "tokens": float(self.plan.tokens),
            **({} if step.lr is None else {"lr": step.lr}),
        }
        for logger in trainer.loggers:
            logger.log_metrics(row, step=trainer.global_step)

    def state_dict(self) -> dict:
        """The plan's state (tokens, samples, optimizer steps): plain ints."""
        return self.plan.state_dict()

    def load_state_dict(self, state_dict) -> None:
        """Restore the plan's state; the step in progress restarts (its gradients are not in a checkpoint)."""
        self.plan.load_state_dict(state_dict)
        self.micro_done = 0

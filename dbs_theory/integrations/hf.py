"""Hugging Face ``Trainer`` that follows a batch-size schedule: :class:`ScheduleTrainer` (the ``hf`` extra).

Use it in place of ``Trainer`` (a few added lines)::

    plan = AccumulationPlan(schedule, micro_batch_size=8, seq_len=1024, world_size=1, lr=wsd(...))
    trainer = ScheduleTrainer(model=model, args=args, train_dataset=ds, plan=plan, total_tokens=2e9)
    trainer.train()                                   # or train(resume_from_checkpoint=".../checkpoint-N")

Why a subclass and not a callback: the Trainer's inner loop decides the
optimizer-step boundaries from ``args.gradient_accumulation_steps`` with a
running micro-batch counter (``(step + 1) % gradient_accumulation_steps``,
also used for the number of batches fetched per step and for the resume
skip), so changing that number mid-run from a callback misplaces the
boundaries. Instead every item of the training dataloader is one whole
optimizer step: a batch sampler yields this process's ``n x micro`` samples
of the step (the plan's step, read from the data as a stream,
:mod:`dbs_theory.integrations._stream`), the Trainer runs with
``gradient_accumulation_steps=1``, and :meth:`ScheduleTrainer.training_step`
splits the step's batch into micro-batches of ``micro_batch_size`` samples,
each a forward/backward pass with loss ``/ n`` (gradient sync only on the
last, under DDP). So:

- every optimizer step consumes the plan's batch exactly (tokens per step =
  ``Step.tokens``), and ``num_input_tokens_seen`` (switched on) counts it;
- the LR is the plan's LR, a function of tokens (a ``LambdaLR`` indexed by
  optimizer step that reads tokens consumed before the step; multiplier
  ``plan.lr(tokens) / args.learning_rate``), when the plan has one;
- each logged loss row in ``trainer_state.json`` ``log_history`` gains
  ``batch_tokens``, ``batch_samples``, ``micro_batches`` (of the last step)
  and ``tokens`` (consumed after it), and ``learning_rate`` is the LR that
  step used, next to the Trainer's
  ``num_input_tokens_seen``; ``dbs fit`` reads a changing batch as a
  dynamic-batch run;
- ``max_steps`` is the plan's steps to ``total_tokens``, and the whole run is
  one "epoch" of that many step-batches, so on resume the Trainer's own skip
  (``global_step`` batches of the sampler, indices only) lands on the data
  position of the checkpoint; the checkpoint's ``num_input_tokens_seen`` is
  checked against the plan at ``global_step``: a resume whose plan puts a
  different token count there (another schedule, micro-batch, sequence length
  or world size that changes the tokens before that step) is refused; one
  that agrees up to the checkpoint and differs only after it is not detected.

The dataloader is not sharded by accelerate (its ``BatchSamplerShard`` assumes
batches of one size); each process's sampler takes its own share. Tested in
one process; several processes follow the same code with ``rank =
args.process_index`` but have no test here.
"""

from __future__ import annotations

import contextlib

import torch
from torch.utils.data import DataLoader
from transformers import Trainer, TrainerCallback

from ._stream import StepClock, sample_ids

__all__ = ["ScheduleTrainer", "StepBatchSampler"]


class StepBatchSampler:
    """Batch sampler: one batch per optimizer step, this process's ``n x micro`` samples of the step.

    Rank ``r`` takes the step's global positions ``samples_before + r x n x
    micro`` onwards. Iterating replays the plan's configuration from zero for
    ``steps`` optimizer steps (it never touches the live plan), so skipping the
    first ``k`` batches reaches the data position after ``k`` steps.
    """

    def __init__(self, plan, n_data: int, steps: int, seed=None, rank: int = 0):
        self.plan, self.n_data, self.steps, self.seed, self.rank = plan, int(n_data), int(steps), seed, int(rank)
        self.batch_size = plan.micro_batch_size  # every batch is a whole number of micro-batches

    def __len__(self):
        return self.steps

    def __iter__(self):
        clock = StepClock(self.plan)
        for k in range(self.steps):
            s = clock.at(k)
            share = s.micro_batches * self.plan.micro_batch_size
            yield sample_ids(s.samples_before + self.rank * share, share, self.n_data, self.seed)


class _ResumeCheck(TrainerCallback):
    """At train begin: the restored ``num_input_tokens_seen`` must be the plan's tokens at ``global_step``."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        step = self.trainer.dbs_clock.at(state.global_step)
        seen = int(state.num_input_tokens_seen or 0)
        if state.global_step and seen != step.tokens_before:
            raise ValueError(
                f"the checkpoint at global_step {state.global_step} has num_input_tokens_seen {seen}, "
                f"the plan has {step.tokens_before} tokens there: resume with the plan it was saved with"
            )


class ScheduleTrainer(Trainer):
    """``Trainer`` whose every optimizer step consumes the batch of an
    :class:`~dbs_theory.schedules.accumulation.AccumulationPlan`.

    Parameters (besides the Trainer's own, all keywords)
    ----------------------------------------------------
    plan : AccumulationPlan
        With ``micro_batch_size == args.per_device_train_batch_size`` (samples),
        ``world_size == args.world_size`` and ``seq_len`` the tokens of every sample.
    total_tokens : float
        Tokens to train on; ``max_steps`` becomes the plan's optimizer steps to reach it.
    seed : int, optional
        Shuffle each pass over ``train_dataset`` (default: read in order).

    Raises ``ValueError`` (one line) for ``gradient_accumulation_steps != 1`` (the
    plan decides accumulation), a mismatched micro-batch, world size or
    ``max_steps``, a dataset without a length, or samples not ``seq_len`` long.
    """

    def __init__(self, *args, plan, total_tokens, seed=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.plan, self.dbs_seed, self.dbs_clock = plan, seed, StepClock(plan)
        steps = plan.total_steps(total_tokens)
        _check_args(self.args, plan, steps)
        self.args.max_steps = steps
        on = self.args.include_num_input_tokens_seen
        self.args.include_num_input_tokens_seen = "all" if isinstance(on, str) else True
        self.add_callback(_ResumeCheck(self))

    def get_train_dataloader(self) -> DataLoader:
        """One batch per optimizer step (:class:`StepBatchSampler`, this process's share). Not passed through
        ``accelerator.prepare``: its sharding assumes batches of one size; ``training_step`` moves inputs."""
        ds = self.train_dataset
        if ds is None or isinstance(ds, torch.utils.data.IterableDataset) or not hasattr(ds, "__len__"):
            raise ValueError("ScheduleTrainer needs a train_dataset with a length (samples are read by index)")
        collate = self.data_collator
        if type(ds).__name__ == "Dataset" and type(ds).__module__.startswith("datasets"):
            ds = self._remove_unused_columns(ds, description="training")
        else:
            collate = self._get_collator_with_removed_columns(collate, description="training")
        sampler = StepBatchSampler(self.plan, len(ds), self.args.max_steps, self.dbs_seed, self.args.process_index)
        return DataLoader(
            ds,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
        )

    def training_step(self, model, inputs, num_items_in_batch=None):
        """One optimizer step's forward/backward: the step's batch in micro-batches of ``micro_batch_size``
        samples, each loss ``/ n``; returns the step's mean loss (detached)."""
        step = self.dbs_clock.at(self.state.global_step)
        n, m = step.micro_batches, self.plan.micro_batch_size
        x = inputs[getattr(self.model, "main_input_name", "input_ids")]
        if x.shape[0] != n * m or x.shape[-1] != self.plan.seq_len:
            raise ValueError(
                f"step {step.index}: got a batch of shape {tuple(x.shape)}, the plan needs "
                f"{n} x {m} samples of {self.plan.seq_len} tokens"
            )
        model.train()
        total = torch.zeros((), device=self.args.device)
        for j in range(n):
            part = {k: v[j * m : (j + 1) * m] if torch.is_tensor(v) and v.dim() else v for k, v in inputs.items()}
            part = self._prepare_inputs(part)
            sync = contextlib.nullcontext() if j == n - 1 else self.accelerator.no_sync(model)
            with sync:
                with self.compute_loss_context_manager():
                    loss = self.compute_loss(model, part)
                if self.args.n_gpu > 1:
                    loss = loss.mean()
                self.accelerator.backward(loss / n)
            total += loss.detach() / n
        return total

    def create_scheduler(self, num_training_steps, optimizer=None):
        """The plan's LR (a function of tokens) as a ``LambdaLR`` over optimizer steps; the Trainer's own
        scheduler when the plan has no LR."""
        if self.plan.lr is None or self.lr_scheduler is not None:
            return super().create_scheduler(num_training_steps, optimizer)
        if not self.args.learning_rate > 0:
            raise ValueError(
                f"args.learning_rate={self.args.learning_rate} must be > 0: the plan's LR is "
                "applied as a multiple of it"
            )
        base, clock = float(self.args.learning_rate), self.dbs_clock
        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer or self.optimizer, lambda k: clock.at(k).lr / base
        )
        self._created_lr_scheduler = True
        return self.lr_scheduler

    def log(self, logs, *args, **kwargs):
        """Loss rows gain the last step's ``batch_tokens``, ``batch_samples``, ``micro_batches`` and ``tokens``;
        ``learning_rate`` is the plan's LR of that step (when the plan has one)."""
        if "loss" in logs and self.state.global_step > 0:
            step = self.dbs_clock.at(self.state.global_step - 1)
            logs.update(
                batch_tokens=step.tokens,
                batch_samples=step.samples,
                micro_batches=step.micro_batches,
                tokens=step.tokens_before + step.tokens,
            )
            if step.lr is not None:  # the LR the step used (transformers < 4.46 logs the next step's)
                logs["learning_rate"] = step.lr
        return super().log(logs, *args, **kwargs)


def _check_args(args, plan, steps):
    """One-line ``ValueError`` where ``TrainingArguments`` contradict the plan."""
    if args.gradient_accumulation_steps != 1:
        raise ValueError(
            f"gradient_accumulation_steps={args.gradient_accumulation_steps}: set it to 1, the plan "
            "decides how many micro-batches each step accumulates"
        )
    if args.per_device_train_batch_size != plan.micro_batch_size:
        raise ValueError(
            f"per_device_train_batch_size={args.per_device_train_batch_size} but the plan's "
            f"micro_batch_size is {plan.micro_batch_size} samples"
        )
    if args.world_size != plan.world_size:
        raise ValueError(f"the run has {args.world_size} processes but the plan's world_size is {plan.world_size}")
    if args.max_steps > 0 and args.max_steps != steps:
        raise ValueError(
            f"max_steps={args.max_steps} but the plan reaches total_tokens in {steps} optimizer "
            "steps: leave max_steps unset (-1)"
        )

"""A batch-size schedule inside the trainers people use (docs/integrations.md).

Each integration turns an :class:`~dbs_theory.schedules.accumulation.AccumulationPlan`
(micro-batches per optimizer step, tokens per step, the LR in tokens) into the
framework's own mechanics; none reimplements the plan's rules. Importing this
package imports no framework: each module imports its own, on first use.

Map:
    :mod:`dbs_theory.integrations.hf` -- Hugging Face ``Trainer``: :class:`~dbs_theory.integrations.hf.ScheduleTrainer`
        (the ``hf`` extra: ``pip install "dbs-theory[hf]"``).
    :mod:`dbs_theory.integrations.lightning` -- PyTorch Lightning:
        :class:`~dbs_theory.integrations.lightning.ScheduleCallback` (the ``lightning`` extra).
    Plain PyTorch -- no module needed: loop over :meth:`AccumulationPlan.advance` (README, docs/integrations.md).
    Megatron-LM -- :meth:`BatchSchedule.to_megatron_step_schedule` gives ``--step-batch-size-schedule``'s value.
    :mod:`dbs_theory.integrations._stream` -- where each step's samples lie in the data (shared, framework-free).
"""

__all__ = ["hf", "lightning"]


def __getattr__(name):
    """``dbs_theory.integrations.hf`` / ``.lightning`` on first access (each imports its framework)."""
    if name in __all__:
        from importlib import import_module

        return import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

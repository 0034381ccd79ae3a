"""Schedules as values: functions of data consumed (tokens or examples), never of steps.

- :mod:`~dbs_theory.schedules.piecewise`: the one schedule type every other builds on;
- :mod:`~dbs_theory.schedules.lr_schedules` and :mod:`~dbs_theory.schedules.lr_plan`: learning rates, and the
  run's LR plan as a multiple of its peak;
- :mod:`~dbs_theory.schedules.batch_schedules`: batch-size schedules, schedule.json;
- :mod:`~dbs_theory.schedules.exports`: the same schedule as Megatron-LM flags and an OLMo-core callback;
- :mod:`~dbs_theory.schedules.accumulation`: micro-batches per optimizer step inside a trainer;
- :mod:`~dbs_theory.schedules.wallclock`: a schedule's time, not only its data.

What a schedule *is* lives here; which schedule to run is decided in :mod:`dbs_theory.rules`.
"""

__all__: list[str] = []

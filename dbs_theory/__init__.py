"""dbs-theory: batch-size theory for WSD pretraining -- from your loss logs to a batch schedule.

The main entry points are importable from here; each is loaded on first use,
so ``import dbs_theory`` stays light (no sympy, scipy or numba until needed).
Data amounts and batch sizes are in the logs' unit (tokens, or examples on
the NQM); steps are optimizer steps.

Reading logs and measuring (``dbs fit``):
    :func:`load_runs`, :class:`Run` (:mod:`dbs_theory.runs`); :class:`BoptTable` (the function
    ``bopt_table`` is imported from :mod:`dbs_theory.bopt_table`, whose name it shares), its cells as
    :class:`Estimate` and :func:`chosen` (the one rule for law-free vs fitted); :class:`Crossover`;
    :func:`envelope_bopt`, :func:`floor_bmin` (:mod:`dbs_theory.estimators`,
    law-free ``Bopt(D)`` and ``Bmin``); :func:`es_points`, :func:`smooth` (:mod:`dbs_theory.curves`);
    :func:`fit_es` (:mod:`dbs_theory.fit`, the three-phase E(S) law).
Planning runs (``dbs plan``): :func:`plan_sweep` (:mod:`dbs_theory.planner`).
Schedules (``dbs schedule``):
    :func:`schedule_from_fit` and :class:`ScheduleChoice` (:mod:`dbs_theory.schedule_rules`, the main path: a
    rule's schedule from a sweep's fit, for the run's :class:`LRPlan`; the default rule optimises the batch on
    a :class:`ModalModel` fitted by :func:`dbs_theory.calibrate.calibrate`); :func:`schedule_from_envelope`
    (:mod:`dbs_theory.sweep_schedule`, the paper's rule on the sweep's measured ``Bopt(D)``);
    :class:`BatchSchedule`, :func:`constant_batch`, :func:`step_batch`,
    :func:`dynamic_batch` (:mod:`dbs_theory.batch_schedules`); :class:`BoptCurve`, :func:`envelope_curve`,
    :func:`fit_bopt_curve` (:mod:`dbs_theory.bopt_curve`); :func:`wsd`, :func:`cosine`, :func:`constant`
    (:mod:`dbs_theory.lr_schedules`, learning rates as functions of data); :func:`late_switch` and
    :class:`OnlineRule` (:mod:`dbs_theory.batch_rules`, ``dbs schedule --rule`` and ``dbs train --batch-rule``).
Inside a trainer: :class:`AccumulationPlan` (:mod:`dbs_theory.accumulation`, micro-batches per step);
    :mod:`dbs_theory.integrations` (Hugging Face Trainer, Lightning; imported on their own).
The theory: :mod:`dbs_theory.derivations` (sympy) and :mod:`dbs_theory.numeric` (lambdified exports).
The NQM laboratory is the :mod:`sim` package; the PyTorch trainer is :mod:`validate`.
"""

from importlib import import_module as _import_module
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("dbs-theory")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"

#: public name -> the module that defines it (loaded on first access)
_EXPORTS = {
    "load_runs": "runs",
    "Run": "runs",
    "write_runs": "runs",
    "BoptTable": "bopt_table",  # the function bopt_table: from dbs_theory.bopt_table (its module's name)
    "Estimate": "bopt_table",
    "chosen": "bopt_table",
    "Crossover": "curves",
    "envelope_bopt": "estimators",
    "floor_bmin": "estimators",
    "es_points": "curves",
    "smooth": "curves",
    "choose_targets": "curves",
    "fit_es": "fit",
    "compare_laws": "fit",
    "plan_sweep": "planner",
    "schedule_from_envelope": "sweep_schedule",
    "SweepSchedule": "sweep_schedule",
    "schedule_from_fit": "schedule_rules",
    "ScheduleChoice": "schedule_rules",
    "LRPlan": "lr_plan",
    "ModalModel": "modal",
    "BatchSchedule": "batch_schedules",
    "constant_batch": "batch_schedules",
    "step_batch": "batch_schedules",
    "dynamic_batch": "batch_schedules",
    "BoptCurve": "bopt_curve",
    "envelope_curve": "bopt_curve",
    "fit_bopt_curve": "bopt_curve",
    "wsd": "lr_schedules",
    "cosine": "lr_schedules",
    "constant": "lr_schedules",
    "AccumulationPlan": "accumulation",
    "late_switch": "batch_rules",
    "OnlineRule": "batch_rules",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(_import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'dbs_theory' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))

"""dbs-theory: batch-size theory for WSD pretraining -- from your loss logs to a batch schedule.

The main entry points are importable from here; each is loaded on first use,
so ``import dbs_theory`` stays light (no sympy, scipy or numba until needed).
Data amounts and batch sizes are in the logs' unit (tokens, or examples on
the NQM); steps are optimizer steps.

The package's rooms, each importing only those before it: :mod:`~dbs_theory.logs`,
:mod:`~dbs_theory.schedules`, :mod:`~dbs_theory.theory`, :mod:`~dbs_theory.measure`,
:mod:`~dbs_theory.rules`; the commands (``dbs``) and integrations sit on top, the root holds helpers
(errors, messages, io, table).

Reading logs and measuring (``dbs fit``):
    :func:`load_runs`, :class:`Run` (:mod:`dbs_theory.logs.runs`); :class:`BoptTable` (built by the
    function ``bopt_table`` of :mod:`dbs_theory.measure.tabulate`), its cells as
    :class:`Estimate` and :func:`chosen` (the one rule for law-free vs fitted); :class:`Crossover`;
    :func:`envelope_bopt`, :func:`floor_bmin` (:mod:`dbs_theory.measure.estimators`,
    law-free ``Bopt(D)`` and ``Bmin``); :func:`es_points`, :func:`smooth` (:mod:`dbs_theory.measure.curves`);
    :func:`fit_es` (:mod:`dbs_theory.measure.fit`, the three-phase E(S) law).
Planning runs (``dbs plan``): :func:`plan_sweep` (:mod:`dbs_theory.measure.planner`).
Schedules (``dbs schedule``):
    :func:`schedule_from_fit` and :class:`ScheduleChoice` (:mod:`dbs_theory.rules.from_fit`, the main path: a
    rule's schedule from a sweep's fit, for the run's :class:`LRPlan`; the default rule optimises the batch on
    a :class:`ModalModel` fitted by :func:`dbs_theory.theory.calibrate.calibrate`); :func:`schedule_from_envelope`
    (:mod:`dbs_theory.rules.envelope`, the paper's rule on the sweep's measured ``Bopt(D)``);
    :class:`BatchSchedule`, :func:`constant_batch`, :func:`step_batch`,
    :func:`dynamic_batch` (:mod:`dbs_theory.schedules.batch_schedules`); :class:`BoptCurve`, :func:`envelope_curve`,
    :func:`fit_bopt_curve` (:mod:`dbs_theory.measure.bopt_curve`); :func:`wsd`, :func:`cosine`, :func:`constant`
    (:mod:`dbs_theory.schedules.lr_schedules`, learning rates as functions of data); :func:`late_switch` and
    :class:`OnlineRule` (:mod:`dbs_theory.rules.online`, ``dbs schedule --rule`` and ``dbs train --batch-rule``).
Inside a trainer: :class:`AccumulationPlan` (:mod:`dbs_theory.schedules.accumulation`, micro-batches per step);
    :mod:`dbs_theory.integrations` (Hugging Face Trainer, Lightning; imported on their own).
The theory: :mod:`dbs_theory.derivations` (sympy) and :mod:`dbs_theory.theory.numeric` (lambdified exports).
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
    "load_runs": "logs.runs",
    "Run": "logs.runs",
    "write_runs": "logs.runs",
    "BoptTable": "measure.tabulate",
    "Estimate": "measure.tabulate",
    "chosen": "measure.tabulate",
    "Crossover": "measure.curves",
    "envelope_bopt": "measure.estimators",
    "floor_bmin": "measure.estimators",
    "es_points": "measure.curves",
    "smooth": "measure.curves",
    "choose_targets": "measure.curves",
    "fit_es": "measure.fit",
    "compare_laws": "measure.fit",
    "plan_sweep": "measure.planner",
    "schedule_from_envelope": "rules.envelope",
    "SweepSchedule": "rules.envelope",
    "schedule_from_fit": "rules.from_fit",
    "ScheduleChoice": "rules.from_fit",
    "LRPlan": "schedules.lr_plan",
    "ModalModel": "theory.modal",
    "BatchSchedule": "schedules.batch_schedules",
    "constant_batch": "schedules.batch_schedules",
    "step_batch": "schedules.batch_schedules",
    "dynamic_batch": "schedules.batch_schedules",
    "BoptCurve": "measure.bopt_curve",
    "envelope_curve": "measure.bopt_curve",
    "fit_bopt_curve": "measure.bopt_curve",
    "wsd": "schedules.lr_schedules",
    "cosine": "schedules.lr_schedules",
    "constant": "schedules.lr_schedules",
    "AccumulationPlan": "schedules.accumulation",
    "late_switch": "rules.online",
    "OnlineRule": "rules.online",
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

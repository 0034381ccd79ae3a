"""Deciding the batch: which schedule a run should follow, from a sweep's fit (``dbs schedule``) or during the
run (``dbs train --batch-rule``).

The offline rules are one module each, keyed by identifier (``dbs schedule --rule``). Each rule module holds
``ID``, ``TITLE`` (a display name) and ``choose(ctx)``: a :class:`~dbs_theory.rules.choice.RuleContext` in, a
:class:`~dbs_theory.rules.choice.ScheduleChoice` out. :data:`REGISTRY` maps ids to :class:`Rule` records;
:data:`RULES` lists the ids in the order ``dbs schedule --help`` shows them. Adding a rule is adding a module
and its line here.

Beside them: :mod:`~dbs_theory.rules.from_fit` (``schedule_from_fit``, the main path),
:mod:`~dbs_theory.rules.inputs` (what it reads from fit.json or frontier.json),
:mod:`~dbs_theory.rules.envelope` (the paper's rule on a measured ``Bopt(D)``) and
:mod:`~dbs_theory.rules.online` (rules decided during the run).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import calibrated, fixed, late_switch, paper, stitch
from ..errors import UserError
from .choice import Choose, RuleContext, ScheduleChoice

__all__ = ["Rule", "REGISTRY", "RULES", "rule_named", "RuleContext", "ScheduleChoice"]


@dataclass(frozen=True)
class Rule:
    """One offline rule: its id (what ``--rule`` takes), its display name, and its entry point."""

    id: str
    title: str
    choose: Choose


REGISTRY: dict[str, Rule] = {
    m.ID: Rule(m.ID, m.TITLE, m.choose) for m in (calibrated, stitch, paper, late_switch, fixed)
}
#: the offline rules' ids
RULES = tuple(REGISTRY)


def rule_named(rule: str) -> Rule:
    """The rule with id ``rule``; another name is refused in one line."""
    from .online import ONLINE

    if rule not in REGISTRY:
        raise UserError(
            f"rule={rule!r} must be one of {', '.join(RULES)}"
            + (" (decided during the run: dbs train --batch-rule)" if rule in ONLINE else "")
        )
    return REGISTRY[rule]

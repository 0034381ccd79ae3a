"""The offline batch-size rules, one module each, keyed by identifier (``dbs schedule --rule``).

Each rule module holds ``ID``, ``TITLE`` (a display name) and ``choose(ctx)``:
a :class:`~dbs_theory.rules.choice.RuleContext` in, a
:class:`~dbs_theory.rules.choice.ScheduleChoice` out. :data:`REGISTRY` maps
ids to :class:`Rule` records; :data:`RULES` lists the ids in the order
``dbs schedule --help`` shows them. Adding a rule is adding a module and its
line here.
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
    from ..batch_rules import ONLINE

    if rule not in REGISTRY:
        raise UserError(
            f"rule={rule!r} must be one of {', '.join(RULES)}"
            + (" (decided during the run: dbs train --batch-rule)" if rule in ONLINE else "")
        )
    return REGISTRY[rule]

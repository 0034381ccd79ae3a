"""``dbs report DIR``: report.md and a self-contained report.html with figures, from any results folder."""

from __future__ import annotations

__all__ = ["HELP", "add_arguments", "run"]

HELP = "turn a results folder (simulate, fit, validate, demo) into report.md + report.html with figures"
EXAMPLES = """examples:
  dbs report results/demo
  dbs report results/validate/cpu"""


def add_arguments(p):
    p.add_argument("directory", help="a folder written by dbs simulate, fit, validate or demo")


def run(args):
    from dbs_theory.io import check_writable

    from .report import build_report, write_report

    sections = build_report(args.directory)
    check_writable(args.directory)
    md, html = write_report(args.directory, sections)
    n = sum(len(s.figures) for s in sections)
    print(f"{len(sections)} sections, {n} figures: {md} and {html} (self-contained)")
    return 0

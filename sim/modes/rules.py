"""``dbs simulate rules``: the rules from measured inputs, scored on the NQM (resumable)."""

from __future__ import annotations

from .common import json_safe, parse_budgets

__all__ = ["run"]


def run(args):
    """``dbs simulate rules``: :func:`sim.rule_chain.study` over ``--budgets``; prints the summary table and writes
    ``rules.json`` (summary and rows) and ``rules.md``; ``--resume`` reuses OUT's sweeps, references and rows."""
    import json

    from dbs_theory.io import atomic_write, check_writable, ensure_writable_dir

    from ..rule_chain import markdown, study, summarize

    budgets = parse_budgets(args.budgets)
    check_writable(args.out)
    out = ensure_writable_dir(args.out)
    if not args.resume:
        for old in [out / "rows.jsonl", out / "refs.json", *sorted((out / "sweeps").glob("*.json"))]:
            old.unlink(missing_ok=True)
    rows = study(budgets, seed=args.seed, out=out, progress=not args.quiet)
    summary = summarize(rows)
    with atomic_write(out / "rules.json") as fh:
        json.dump(json_safe(dict(budgets=budgets, summary=summary, rows=rows)), fh, indent=1)
    with atomic_write(out / "rules.md") as fh:
        fh.write(markdown(summary))
    print(markdown(summary))
    print(f"wrote {out}/rules.json, rules.md")
    return 0

"""``report.md`` and a self-contained ``report.html`` from any results folder.

A results folder is whatever ``dbs simulate``, ``dbs simulate schedule``,
``dbs fit``, ``dbs schedule``, ``dbs validate ...`` or ``dbs demo`` wrote.
Every folder up to three levels deep is offered to each
:data:`~dbs_report.presenters.PRESENTERS` entry; every result one recognises
becomes a section with its figures (PNG, under ``figures/``) and, for
experiments, its verdict table. The HTML embeds the images as base64, so it
opens anywhere.
"""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from dbs_theory.io import atomic_write

from . import figures as F
from .presenters import PRESENTERS, experiment_rank

__all__ = ["Section", "build_report", "write_report", "markdown_to_html", "findings_table"]

_SKIP = {"runs", "logs", "configs", "figures", "schedules"}


@dataclass
class Section:
    """A report section: a title, markdown text, and ``(figure, file name, caption)`` entries."""

    title: str
    text: str = ""
    figures: list = field(default_factory=list)


def build_report(directory):
    """Sections for every result found in ``directory`` (three levels deep). Raises if none."""
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"no such results folder: {str(root)!r}")
    dirs = [root] + sorted(
        p
        for p in root.rglob("*")
        if p.is_dir() and not (_SKIP & set(p.relative_to(root).parts)) and len(p.relative_to(root).parts) <= 3
    )
    rank = lambda p: (len(p.relative_to(root).parts) > 0, str(p.parent), experiment_rank(p.name), p.name)
    dirs = sorted(dirs, key=rank)
    sections = []
    for d in dirs:
        found = [sec for pr in PRESENTERS if pr.finds(d) for sec in pr.sections(d)]
        for title, text, figs in found:
            title = title.replace(f"({root}/", "(").replace(f"({root})", "(.)")
            sections.append(Section(title, text, figs))
    if not sections:
        raise ValueError(f"{root}: no results found (expected outputs of dbs simulate, fit, validate or demo)")
    return sections


def findings_table(directory) -> str:
    """Markdown table of every experiment's claims and verdicts under ``directory`` ('' if none)."""
    root = Path(directory)
    rows = []
    for f in sorted(root.rglob("summary.json")):
        if _SKIP & set(f.relative_to(root).parts):
            continue
        try:
            s = json.loads(f.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{f}: malformed JSON ({exc.msg} at line {exc.lineno})") from None
        for c in s.get("claims", []):
            rows.append((s.get("experiment", f.parent.name), s.get("wall_seconds", math.nan), c))
    if not rows:
        return ""
    rows.sort(key=lambda r: experiment_rank(r[0]))
    lines = ["| experiment | claim | our measurement | verdict |", "|---|---|---|---|"]
    cell = lambda t: str(t).replace("|", "\u2223")  # a literal | would split the table cell
    lines += [
        f"| `{e}` ({w / 60:.0f} min) | {cell(c['claim'])} | {cell(c['measured'])} | **{c['verdict']}** |"
        for e, w, c in rows
    ]
    return "\n".join(lines)


def write_report(directory, sections=None, intro=""):
    """Render figures to ``figures/`` and write ``report.md`` and ``report.html``; returns their paths."""
    root = Path(directory)
    sections = sections if sections is not None else build_report(root)
    table = findings_table(root)
    if table:
        intro = (intro + "\n\n" if intro else "") + "### Verdicts of the experiments\n\n" + table
    (root / "figures").mkdir(exist_ok=True)
    md = ["# dbs-theory report", "", intro, ""] if intro else ["# dbs-theory report", ""]
    pngs = {}
    for i, sec in enumerate(sections):
        md += [f"## {sec.title}", ""]
        if sec.text:
            md += [sec.text, ""]
        for fig, name, caption in sec.figures:
            fname = f"figures/{i:02d}-{_slug(sec.title)}-{name}.png"
            F.save(fig, root / fname)
            pngs[fname] = root / fname
            md += [f"![{caption}]({fname})", "", f"*{caption}*", ""]
    text = "\n".join(md) + "\n"
    with atomic_write(root / "report.md") as fh:
        fh.write(text)
    with atomic_write(root / "report.html") as fh:
        fh.write(markdown_to_html(text, {k: v.read_bytes() for k, v in pngs.items()}))
    return root / "report.md", root / "report.html"


def _slug(s):
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")[:40]


def markdown_to_html(md, images=None) -> str:
    """The report's markdown as standalone HTML (markdown-it-py: CommonMark plus tables); each image named
    in ``images`` (``{path in the markdown: PNG bytes}``) is embedded as a data URI."""
    from markdown_it import MarkdownIt

    for path, data in (images or {}).items():
        md = md.replace(f"]({path})", f"](data:image/png;base64,{base64.b64encode(data).decode()})")
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(md)
    # Wide tables scroll inside their own box instead of running past the page's edge; a phone
    # gets the device width (viewport) and tighter cells.
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;display:block;max-width:100%;overflow-x:auto}"
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}th{background:#f3f3f3}"
        "pre{background:#f7f7f7;padding:8px;overflow-x:auto}img{max-width:100%;border:1px solid #eee;"
        "margin:0.5em 0}@media (max-width:600px){body{margin:1em auto}td,th{padding:2px 4px;font-size:90%}}"
    )
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'><title>dbs-theory report</title>"
        f"<style>{style}</style></head><body>\n" + body + "</body></html>\n"
    )

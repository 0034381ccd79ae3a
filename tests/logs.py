"""Comparing training logs: everything but the wall-clock column must match between identical runs."""

import csv

__all__ = ["comparable", "tokens_per_step"]


def comparable(path, rename=None) -> list:
    """The rows of ``log.csv`` at ``path`` without ``wall_time``, with the run name replaced by ``rename``."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and "wall_time" in rows[0], f"{path}: no wall_time column"
    return [{k: (rename if k == "run" and rename else v) for k, v in r.items() if k != "wall_time"} for r in rows]


def tokens_per_step(schedule, total) -> list:
    """Tokens each optimizer step takes, from the schedule alone: each step takes the batch at the tokens
    consumed before it, until ``total`` tokens (what an integration's run must match)."""
    out, D = [], 0
    while D < total:
        out.append(int(schedule(D)))
        D += out[-1]
    return out

"""The log store: every finished run's log, compressed, kept in the repository and reused by config hash.

A run's folder under ``<root>/runs/`` holds its checkpoint and log; the store
keeps only what a refit needs -- ``<label>-<key>.csv.gz`` (the log) and
``<label>-<key>.json`` (its ``config.json`` and the ``done.json`` record) --
so it can be committed. ``<key>`` is :func:`~validate.experiments.run_cache.config_key`,
the hash of what the run computes, so a store filled on one machine serves
any results folder: :func:`restore` writes a stored run into a run folder as
if it had just finished there, and ``dbs validate`` then trains only the runs
the store lacks (a later command with more seeds adds runs, it retrains
none). With ``from_logs`` nothing is trained: a missing run is refused by
name, so the findings can be refitted by anyone without training.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

from dbs_theory.io import atomic_write

__all__ = ["LogStore", "DEFAULT_STORE", "default_store"]

#: The repository's store (present in a checkout, absent from an installed wheel).
DEFAULT_STORE = Path(__file__).resolve().parents[2] / "docs" / "data" / "runs"


@dataclass(frozen=True)
class LogStore:
    """A folder of stored runs (module doc); ``from_logs``: refuse to train what it lacks."""

    path: Path
    from_logs: bool = False

    def _stem(self, key: str):
        hits = sorted(Path(self.path).glob(f"*-{key}.json"))
        return Path(str(hits[0])[: -len(".json")]) if hits else None  # labels hold dots (weightdecay0.01)

    def has(self, key: str) -> bool:
        return self._stem(key) is not None

    def restore(self, key: str, d: Path) -> bool:
        """Write the stored run ``key`` into run folder ``d`` (log, config, done record); False if absent."""
        stem = self._stem(key)
        if stem is None:
            return False
        try:
            record = json.loads(Path(f"{stem}.json").read_text(encoding="utf-8"))
            log = gzip.decompress(Path(f"{stem}.csv.gz").read_bytes())
            record["config"], record["done"]  # noqa: B018 (both must be there)
        except (OSError, ValueError, EOFError, KeyError, TypeError, gzip.BadGzipFile) as exc:
            raise ValueError(
                f"log store {self.path}: stored run {stem.name} is unreadable "
                f"({exc.__class__.__name__}: {str(exc)[:80]}); remove its two files to retrain it"
            ) from None
        d.mkdir(parents=True, exist_ok=True)
        with atomic_write(d / "log.csv", "wb") as fh:
            fh.write(log)
        with atomic_write(d / "config.json") as fh:
            json.dump(record["config"], fh, indent=1)
        with atomic_write(d / "done.json") as fh:
            json.dump(dict(record["done"], restored_from=str(stem)), fh, indent=1)
        return True

    def put(self, key: str, d: Path) -> None:
        """Keep run folder ``d``'s log and records under ``<label>-<key>`` (a finished run; idempotent)."""
        done = json.loads((d / "done.json").read_text(encoding="utf-8"))
        stem = Path(self.path) / f"{done['label']}-{key}"
        if self.has(key):
            return
        Path(self.path).mkdir(parents=True, exist_ok=True)
        with atomic_write(f"{stem}.csv.gz", "wb") as fh:
            fh.write(gzip.compress((d / "log.csv").read_bytes(), compresslevel=9, mtime=0))
        config = json.loads((d / "config.json").read_text(encoding="utf-8"))
        with atomic_write(f"{stem}.json") as fh:
            json.dump(
                dict(config=config, done={k: v for k, v in done.items() if k != "restored_from"}),
                fh,
                indent=1,
                sort_keys=True,
            )


def default_store(tier_name: str):
    """The repository's store for a named real tier (``cpu``, ``gpu``) in a checkout; else None."""
    return LogStore(DEFAULT_STORE) if tier_name in ("cpu", "gpu") and DEFAULT_STORE.parent.is_dir() else None

"""Log files in: one CSV or JSONL file of the log format read into columns, checked cell by cell.

:func:`read_log_file` gives ``(names, columns, optional columns, where)`` for
:func:`dbs_theory.logs.runs.load_runs` to group into runs; every refusal names the
file, the line and the column. Only regular files are opened (:func:`regular_file`).
"""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np

__all__ = [
    "REQUIRED",
    "OPTIONAL",
    "LOG_FIELDS",
    "SPLIT",
    "TRAIN_SPLITS",
    "JSON_SUFFIXES",
    "regular_file",
    "log_files",
    "read_log_file",
]

REQUIRED = ("run", "batch_size", "step", "tokens", "loss")
OPTIONAL = ("lr", "val_loss", "seq_len", "world_size", "b_simple", "gns_g2", "gns_trace", "wall_time")
#: every column of the log format, in the order ``dbs train`` writes them (one schema for writer and reader)
LOG_FIELDS = REQUIRED + OPTIONAL
#: a column that marks each row's kind; only rows of a training kind are read (others warned and dropped)
SPLIT = "split"
TRAIN_SPLITS = ("train", "training")


def _read_text(path: Path) -> str:
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a BOM (as Excel writes) is not part of a column name
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: not a UTF-8 text file (undecodable byte at offset {exc.start}; UTF-16 or binary?)"
        ) from None
    if "\x00" in text:
        raise ValueError(f"{path}: not a text log (it holds NUL bytes: binary or UTF-16?)")
    if not text.strip():
        raise ValueError(f"{path}: the file is empty")
    return text


JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs):
    """A JSON object's dict, refusing a key given twice (``json`` would keep the last silently)."""
    out = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def _read_rows(path: Path, as_json: bool):
    """``(columns, line_numbers, names)``: ``{name: list of cell values}`` (the log format's columns at least),
    the line each row came from, and every column name the file has."""
    text = _read_text(path)
    if as_json:
        rows, lines = [], []
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line, object_pairs_hook=_unique_keys))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{i}: malformed JSON ({exc.msg})") from None
                except RecursionError:
                    raise ValueError(f"{path}:{i}: JSON nested too deeply to be a log row") from None
                except _DuplicateKey as exc:
                    raise ValueError(
                        f"{path}:{i}: key {exc.args[0]!r} appears twice in one object (which one is meant?)"
                    ) from None
                if not isinstance(rows[-1], dict):
                    raise ValueError(f"{path}:{i}: each JSONL line must be an object")
                lines.append(i)
        keys = dict.fromkeys(k for r in rows for k in r)  # every line's keys, not the first line's only
        return {k: [r.get(k) for r in rows] for k in keys}, lines, list(keys)
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None or len(header) < 2:
        raise ValueError(f"{path}: malformed CSV (no header with the columns {', '.join(REQUIRED)})")
    header = [h.strip() for h in header]  # "run, batch_size" as spreadsheets write it
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise ValueError(f"{path}: column {twice[0]!r} appears twice in the header (which one is meant?)")
    fast = _read_csv_fast(text, header)
    if fast is not None:
        return (*fast, header)
    rows, lines = [], []
    for r in reader:
        if r:
            rows.append(r)
            lines.append(reader.line_num)
    n = len(header)
    for i, r in enumerate(rows):
        if len(r) != n:
            if len(r) > n:
                raise ValueError(f"{path}:{lines[i]}: malformed CSV (the row has more fields than the header)")
            lost = [h for h in header[len(r) :] if h in REQUIRED]
            if lost:
                raise ValueError(
                    f"{path}:{lines[i]}: malformed CSV (the row has {len(r)} fields, the header {n}: no "
                    f"{', '.join(map(repr, lost))}; a truncated line?)"
                )
            r.extend([""] * (n - len(r)))  # trailing optional columns left out: empty
    cols = list(zip(*rows)) if rows else [()] * n
    return dict(zip(header, cols)), lines, header


def _read_csv_fast(text, header):
    """Columns of a well-formed CSV through numpy's C reader, or ``None`` (the caller falls back).

    Only the columns the reader uses are parsed; any irregularity (an empty
    cell, a non-number, a ragged row) returns ``None`` so the careful path can
    name the line and column.
    """
    import io

    want = [c for c in (*REQUIRED, *OPTIONAL) if c in header]
    if "run" not in want or len(set(header)) != len(header) or any(h.lower() == SPLIT for h in header):
        return None
    numeric = [header.index(c) for c in want if c != "run"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vals = np.loadtxt(
                io.StringIO(text), delimiter=",", skiprows=1, usecols=numeric, ndmin=2, quotechar='"', comments=None
            )
            names = np.loadtxt(
                io.StringIO(text),
                delimiter=",",
                skiprows=1,
                usecols=header.index("run"),
                dtype=str,
                ndmin=1,
                quotechar='"',
                comments=None,
            )
    except (ValueError, TypeError, IndexError):
        return None
    if text.count(",") != (names.size + 1) * (len(header) - 1):  # ragged rows (or quoted commas)
        return None
    cols = {c: vals[:, j] for j, c in enumerate(c for c in want if c != "run")}
    cols["run"] = names.tolist()
    return cols, _CsvLines(text, names.size)


class _CsvLines:
    """Line number of the i-th data row of a CSV text, found only when an error needs it."""

    def __init__(self, text, n):
        self.text, self.n = text, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        reader = csv.reader(self.text.splitlines())
        next(reader)
        k = -1
        for r in reader:
            k += bool(r)
            if k == i:
                return reader.line_num
        raise IndexError(i)


def _column(values, key, path, lines, numeric=True, typed=False):
    """One column as an array; ``typed`` (JSON): a number must be a JSON number, not a bool or a string."""
    if isinstance(values, np.ndarray):
        return values
    if typed and numeric:
        for i, v in enumerate(values):
            if not (v is None or v == "" or (isinstance(v, (int, float)) and not isinstance(v, bool))):
                raise ValueError(f"{path}:{lines[i]}: column {key!r} has a non-numeric value {v!r}")
    if not numeric:
        if all(type(v) is str for v in values):
            return np.array(values, dtype=object)
        return np.array(["" if v is None else str(v) for v in values], dtype=object)
    try:  # the fast path: every cell a number
        return np.array(values, dtype=float)
    except (TypeError, ValueError):
        pass
    out = np.empty(len(values))
    for i, v in enumerate(values):
        try:
            out[i] = np.nan if v in (None, "") else float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{path}:{lines[i]}: column {key!r} has a non-numeric value {v!r}") from None
    return out


def regular_file(path: Path) -> Path:
    """``path`` if it is a regular file (or a link to one); else one line: a FIFO, socket or device is never
    opened (reading one could block forever)."""
    if not Path(path).exists():
        raise FileNotFoundError(f"no such file: {str(path)!r}")
    if Path(path).is_dir():
        raise ValueError(f"{path}: is a folder; give a file")
    if not Path(path).is_file():
        raise ValueError(f"{path}: not a regular file (a FIFO, socket or device?); give a log file")
    return Path(path)


def log_files(path: Path, log_format=None):
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {str(path)!r}")
    if path.is_dir():
        suffixes = {"csv": (".csv",), "jsonl": (".jsonl", ".ndjson")}.get(log_format, (".csv", ".jsonl", ".ndjson"))
        named = sorted(p for p in path.iterdir() if p.suffix.lower() in suffixes)
        files = [p for p in named if p.is_file()]
        if len(files) < len(named):
            odd = [p.name for p in named if not p.is_file()]
            broken = [p.name for p in named if p.is_symlink() and not p.exists()]
            warnings.warn(
                f"{path}: skipped {len(odd)} entr{'y' if len(odd) == 1 else 'ies'} that are not regular "
                f"files ({', '.join(odd[:3])}): "
                + (f"{', '.join(broken[:3])} link(s) to nothing; " if broken else "")
                + "a FIFO, device or folder is never opened",
                stacklevel=4,
            )
        if not files:
            deeper = sorted(p for p in path.glob("*/*") if p.suffix.lower() in suffixes)
            hint = (
                f"; its subfolders hold {len(deeper)} (e.g. {str(deeper[0])!r}): pass the files, e.g. "
                f"{str(path / '*' / deeper[0].name)!r}"
                if deeper
                else ""
            )
            raise ValueError(f"{path}: the directory holds no {' or '.join(suffixes)} logs{hint}")
        deeper = sorted(p for p in path.glob("*/*") if p.suffix.lower() in suffixes)
        if deeper:
            warnings.warn(
                f"{path}: read its own {len(files)} log file(s); its subfolders hold {len(deeper)} more (e.g. "
                f"{str(deeper[0])!r}), not read: pass them too if they belong to the sweep",
                stacklevel=4,
            )
        return files
    return [regular_file(path)]


def read_log_file(f: Path, log_format=None):
    """One log file as ``(names, {column: array}, {optional: array}, where)``; ``where(i)`` is row i's
    ``file:line``. ``log_format`` (csv, jsonl) overrides the file's suffix."""
    as_json = log_format == "jsonl" or (log_format is None and f.suffix.lower() in JSON_SUFFIXES)
    got, lines, names_in_file = _read_rows(f, as_json)
    if not lines:
        raise ValueError(f"{f}: no data rows (only a header)" if got else f"{f}: no data rows")
    split = [c for c in got if c.strip().lower() == SPLIT]
    if len(split) > 1:
        raise ValueError(f"{f}: columns {', '.join(map(repr, split))} both mark the rows' split (which one is meant?)")
    if split:
        got, lines = _training_rows(f, got, lines, split[0])
    got, lines = _without_blank_rows(f, got, lines)
    if "run" not in got and all(c in got for c in REQUIRED[1:]):  # one run's log, e.g. Lightning's metrics.csv
        name = str(f)  # the file's path, suffix and all: never another file's run name
        warnings.warn(f"{f}: no 'run' column; the file is one run, named {name!r}", stacklevel=4)
        got["run"] = [name] * len(lines)
    if "loss" not in got and "val_loss" in got:  # an eval-only log: its one loss is the held-out one
        warnings.warn(
            f"{f}: no 'loss' column; reading 'val_loss' as each row's loss (an evaluation-only log)", stacklevel=4
        )
        got["loss"] = got["val_loss"]
    missing = [c for c in REQUIRED if c not in got and c != "run"] or [c for c in REQUIRED if c not in got]
    if missing:
        raise ValueError(
            f"{f}: missing column(s) {', '.join(missing)}; it has {', '.join(map(repr, names_in_file[:8]))}"
            f"{' ...' if len(names_in_file) > 8 else ''} (the log format: {', '.join(REQUIRED)}; "
            f"optional {', '.join(OPTIONAL)}; a file without 'run' is one run)"
        )
    unknown = [c for c in names_in_file if c not in LOG_FIELDS and c not in split]
    if unknown:
        warnings.warn(
            f"{f}: column(s) {', '.join(map(repr, unknown[:5]))} are not in the log format and are "
            "ignored (a column marking eval rows is named split: split=eval rows are dropped)",
            stacklevel=4,
        )
    names = _column(got["run"], "run", f, lines, numeric=False)
    _check_names(names, f, lines)
    cols = {c: _column(got[c], c, f, lines, typed=as_json) for c in REQUIRED[1:]}
    extra = {c: _column(got[c], c, f, lines, typed=as_json) for c in OPTIONAL if c in got}
    return names, cols, extra, lambda i: f"{f}:{lines[i]}"


def _without_blank_rows(f, got, lines):
    """Drop, with a warning, rows whose ``batch_size``, ``tokens`` and ``loss`` cells are all empty: a logger
    that merges metrics by step (Lightning's CSVLogger) writes its validation rows so; they hold no training
    point. A row with some of the three is kept (and checked)."""
    cols = [c for c in ("batch_size", "tokens", "loss") if c in got]
    if len(cols) < 3 or isinstance(got["loss"], np.ndarray):
        return got, lines
    blank = [all(got[c][i] in (None, "") for c in cols) for i in range(len(lines))]
    if not any(blank):
        return got, lines
    if all(blank):
        raise ValueError(f"{f}: every row leaves batch_size, tokens and loss empty: no training row")
    keep = [i for i, b in enumerate(blank) if not b]
    warnings.warn(
        f"{f}: dropped {len(lines) - len(keep)} row(s) with batch_size, tokens and loss all empty (e.g. "
        f"line {lines[blank.index(True)]}: a validation row of a logger that merges metrics by step)",
        stacklevel=5,
    )
    return {c: [v[i] for i in keep] for c, v in got.items()}, [lines[i] for i in keep]


def _training_rows(f, got, lines, column):
    """The rows the ``split`` column (any case) marks as training (``train``/``training``, any case) or leaves
    unlabelled (empty, null); the others (eval, validation, test rows logged beside training) are dropped with
    a warning counting each label, never merged into the training curve; a file with no training rows is
    refused."""
    kind = [("" if v is None else str(v)).strip().lower() for v in got[column]]
    keep = [i for i, k in enumerate(kind) if k in TRAIN_SPLITS or k == ""]
    if len(keep) == len(kind):
        return got, lines
    counts = {}
    for k in kind:
        if not (k in TRAIN_SPLITS or k == ""):
            counts[k] = counts.get(k, 0) + 1
    said = ", ".join(f"{n} {k!r}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    if not keep:
        raise ValueError(
            f"{f}: column {column!r} marks no row as training ({said}); give the training log "
            "(rows with split=train or no split), or log the held-out loss as val_loss beside loss"
        )
    warnings.warn(
        f"{f}: dropped {len(kind) - len(keep)} row(s) that column {column!r} marks as not training "
        f"({said}): only split=train (or unlabelled) rows are the training curve",
        stacklevel=5,
    )
    return {c: [v[i] for i in keep] for c, v in got.items()}, [lines[i] for i in keep]


def _check_names(names, f, lines):
    """Refuse an empty run name (a CSV cell or a missing JSONL key) and two names that differ only by
    surrounding spaces (one run, or two?), naming the line."""
    blank = np.flatnonzero(np.char.str_len(np.char.strip(names.astype(str))) == 0)
    if blank.size:
        raise ValueError(f"{f}:{lines[int(blank[0])]}: the row has no run name (column 'run' empty or missing)")
    stripped = {}
    for n in dict.fromkeys(names.tolist()):
        other = stripped.setdefault(n.strip(), n)
        if other != n:
            raise ValueError(
                f"{f}: run names {other!r} and {n!r} differ only by surrounding spaces: one run or two? fix the names"
            )

"""One schema per JSON file the package reads: what each file may hold, checked once, into typed records.

``dbs schedule``, ``dbs report`` and ``dbs train`` read the files earlier commands wrote (and users edit):

==================  ====================  =========================================================
file                schema                written by
==================  ====================  =========================================================
``schedule.json``   :class:`ScheduleFile`  ``dbs schedule`` (read by ``dbs train --batch-schedule``)
``exports.json``    :class:`ExportsFile`   ``dbs schedule`` (read by ``dbs report``)
``fit.json``        :class:`FitFile`       ``dbs fit`` (read by ``dbs schedule --from``, ``dbs report``,
                                           ``dbs train --rule-fit``)
``frontier.json``   :class:`FrontierFile`  ``dbs simulate`` (read by ``dbs schedule --from``)
==================  ====================  =========================================================

Each is a pydantic model in strict mode: a string where a number belongs, a list where an object belongs,
a missing key or a NaN where a finite number belongs is refused in one line naming the file, the key's
path and the value (:func:`read`). Keys a schema does not use are ignored (a newer writer may add some).
pydantic was chosen over jsonschema because it parses into typed objects in one step (jsonschema only
validates, and the records would still be taken apart by hand), and its core is one compiled wheel for
every platform the package supports.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .runs import LIMITS

__all__ = [
    "ScheduleFile",
    "Segment",
    "ExportsFile",
    "Band",
    "OlmoCoreExport",
    "FitFile",
    "Envelope",
    "FrontierFile",
    "read",
    "read_source",
    "parse",
    "SchemaError",
]

Number = Union[int, float]


class SchemaError(ValueError):
    """A file that does not match its schema; the message is one line naming the file, key and value."""


class _Record(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, populate_by_name=True)
    #: the command that writes the file, named in a refusal
    writer: ClassVar[str] = ""


# -- schedule.json ---------------------------------------------------------------------------------
class Segment(_Record):
    """One piece of a schedule: from data ``start`` (``from`` in the file) on, ``batch_size`` per step."""

    start: float = Field(alias="from", ge=0, allow_inf_nan=False)
    batch_size: float = Field(gt=0, allow_inf_nan=False)


class ScheduleFile(_Record):
    """``schedule.json``: a batch size per data range (docs/conventions.md)."""

    writer: ClassVar[str] = "dbs schedule"

    unit: Literal["tokens", "samples", "examples"]  # required: a schedule read in the wrong unit is off by seq_len
    lr: Optional[float] = Field(default=None, gt=0, allow_inf_nan=False)
    kind: str = "step"
    params: dict[str, Any] = Field(default_factory=dict)
    monotone: bool = False
    segments: list[Segment] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self):
        starts = [s.start for s in self.segments]
        if starts[0] != 0:
            raise ValueError(f"the first segment must start at 0; got from={starts[0]!r}")
        for i, (a, b) in enumerate(zip(starts, starts[1:])):
            if not b > a:
                raise ValueError(
                    f"segments must start in increasing order; segment {i + 1} starts at {b!r} after {a!r}"
                )
        sizes = [s.batch_size for s in self.segments]
        if (self.monotone or self.params.get("monotone") is True) and any(b < a for a, b in zip(sizes, sizes[1:])):
            raise ValueError("the schedule says monotone but a segment's batch_size falls")
        return self


# -- exports.json ----------------------------------------------------------------------------------
class Band(_Record):
    """The measured Bopt interval along the schedule (``exports.json`` ``band``)."""

    D: list[Number] = Field(min_length=1)
    lo: list[Number]
    hi: list[Number]
    measured_to: float = Field(gt=0, allow_inf_nan=False)
    beyond: bool = False

    @model_validator(mode="after")
    def _lengths(self):
        if not len(self.D) == len(self.lo) == len(self.hi):
            raise ValueError(f"D, lo and hi must be of one length; got {len(self.D)}, {len(self.lo)}, {len(self.hi)}")
        return self


class OlmoCoreExport(_Record):
    """Arguments of OLMo-core's ``BatchSizeSchedulerCallback`` and the batch error they cause."""

    batch_sizes: list[int] = Field(min_length=1)
    schedule: list[dict[str, Any]]
    error: float = Field(ge=0, allow_inf_nan=False)


class ExportsFile(_Record):
    """``exports.json``: the schedule's trainer exports and, for a fit, the rule's choice and its reasons."""

    writer: ClassVar[str] = "dbs schedule"

    rule: Optional[str] = None
    recommendation: Optional[Literal["dynamic", "fixed"]] = None
    reason: Optional[str] = None
    best_fixed: Optional[float] = Field(default=None, gt=0, allow_inf_nan=False)
    measured_to: Optional[float] = Field(default=None, gt=0, allow_inf_nan=False)
    band: Optional[Band] = None
    curve: Optional[dict[str, Any]] = None
    olmo_core: Optional[OlmoCoreExport] = None
    megatron: Optional[str] = None
    megatron_args: Optional[str] = None
    megatron_note: Optional[str] = None

    @model_validator(mode="after")
    def _choice(self):
        if self.recommendation is not None and self.reason is None:
            raise ValueError("a recommendation needs its 'reason'")
        if self.band is not None and not isinstance((self.curve or {}).get("D", []), list):
            raise ValueError("'curve' must hold a list D beside the band")
        return self


# -- fit.json --------------------------------------------------------------------------------------
Value = Union[int, float, str, bool, None]


class Envelope(_Record):
    """The law-free sweep envelope of ``fit.json``: Bopt per data amount and the per-batch losses."""

    data: list[Number]
    bopt: list[Optional[Number]]
    lo: list[Optional[Number]]
    hi: list[Optional[Number]]
    identified: list[bool]
    loss: list[Optional[Number]] = Field(default_factory=list)
    loss_lo: list[Optional[Number]] = Field(default_factory=list)
    loss_hi: list[Optional[Number]] = Field(default_factory=list)
    batches: list[Number] = Field(default_factory=list)
    reason: list[Optional[str]] = Field(default_factory=list)
    by_batch: list[list[Optional[Number]]] = Field(default_factory=list)
    mean_by_batch: list[list[Optional[Number]]] = Field(default_factory=list)
    log_gap: Optional[float] = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _lengths(self):
        n = len(self.data)
        for key in ("bopt", "lo", "hi", "identified"):
            if len(getattr(self, key)) != n:
                raise ValueError(f"'{key}' must hold one entry per data amount ({n}); got {len(getattr(self, key))}")
        if any(len(b) != n for b in self.by_batch):
            raise ValueError(f"every 'by_batch' list must hold one loss per data amount ({n})")
        if self.by_batch and len(self.by_batch) != len(self.batches):
            raise ValueError(f"'by_batch' must hold one list per batch in 'batches' ({len(self.batches)})")
        _increasing("data", self.data)
        _increasing("batches", self.batches)
        if self.batches and self.data and self.batches[-1] > self.data[-1]:
            raise ValueError(
                f"'batches' holds {self.batches[-1]:g}, more than the sweep's largest data amount "
                f"{self.data[-1]:g}: no run of that batch took a step"
            )
        for key in ("loss", "loss_lo", "loss_hi", "by_batch", "mean_by_batch"):
            values = getattr(self, key)
            for v in (x for row in values for x in (row if isinstance(row, list) else [row])):
                if v is not None and not (math.isfinite(v) and 0 < v < LOSS_LIMIT):
                    raise ValueError(
                        f"'{key}' holds {v!r}: a loss must be a positive finite number below {LOSS_LIMIT:g}"
                    )
        return self

    def as_dict(self) -> dict:
        """The plain record the schedule rules read (:func:`dbs_theory.rules.from_fit.schedule_from_fit`)."""
        return self.model_dump(exclude_unset=True)


#: the largest loss an envelope may hold: the log reader's own limit (a larger one is a corrupted file)
LOSS_LIMIT = LIMITS["loss"]


def _increasing(key, values):
    """Refuse a list of batches or data amounts that is not positive, finite and strictly increasing."""
    for i, v in enumerate(values):
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"'{key}[{i}]' must be a positive finite number; got {v!r}")
        if i and v <= values[i - 1]:
            raise ValueError(
                f"'{key}' must increase strictly; {key}[{i}]={v!r} follows {values[i - 1]!r}"
                + (" (a batch listed twice?)" if key == "batches" and v == values[i - 1] else "")
            )


#: fit.json row columns that are batches, steps or data amounts: positive wherever they are numbers
POSITIVE = ("bopt", "bmin", "smin", "sopt", "emin", "data")


class FitFile(_Record):
    """``fit.json``: the per-target table (``rows``), its fitted laws (``laws[i]`` for ``rows[i]``) and the
    sweep envelope."""

    writer: ClassVar[str] = "dbs fit"

    version: Literal[1] = 1
    rows: list[dict[str, Value]]
    laws: list[dict[str, dict[str, float]]] = Field(default_factory=list)
    lr: Optional[float] = Field(default=None, gt=0, allow_inf_nan=False)
    law: Optional[str] = None
    verdict: dict[str, Any] = Field(default_factory=dict)
    envelope: Optional[Envelope] = None
    crossovers: list[dict[str, Any]] = Field(default_factory=list)
    excluded: list[list[Any]] = Field(default_factory=list)
    dynamic_runs: list[dict[str, Any]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rows(self):
        for i, r in enumerate(self.rows):
            t = r.get("target")
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
                raise ValueError(
                    f"rows[{i}].target " + ("is missing" if t is None else f"must be a finite number; got {t!r}")
                )
            if t <= 0:
                raise ValueError(f"rows[{i}].target must be a positive loss; got {t!r}")
            for k, v in r.items():
                text = k.endswith(("status", "source", "column"))
                if v is not None and (
                    isinstance(v, str) != text or (isinstance(v, bool) and not k.startswith("agree"))
                ):
                    raise ValueError(f"rows[{i}].{k} must be {'a string' if text else 'a number'}; got {v!r}")
                if not text and not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v):
                    if (k.startswith(POSITIVE) and v <= 0) or (k.startswith("n_") and v < 0):
                        raise ValueError(
                            f"rows[{i}].{k} must be "
                            f"{'positive' if v <= 0 and k.startswith(POSITIVE) else '>= 0'}; got {v!r}"
                        )
        if self.laws and len(self.laws) != len(self.rows):
            raise ValueError(f"'laws' must list one entry per row ({len(self.rows)}); got {len(self.laws)}")
        return self

    def target_laws(self) -> list:
        """``(target, {law: params})`` per row (none for a hand-made file without laws)."""
        return [(r["target"], per_law) for r, per_law in zip(self.rows, self.laws)]


# -- frontier.json ---------------------------------------------------------------------------------
class FrontierFile(_Record):
    """``frontier.json`` of ``dbs simulate``: the exact per-target rows and the simulation's settings."""

    writer: ClassVar[str] = "dbs simulate"

    targets: list[dict[str, Value]] = Field(min_length=1)
    points: list[dict[str, Value]] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)

    @property
    def lr(self):
        eta = self.meta.get("eta")
        return eta if isinstance(eta, (int, float)) and not isinstance(eta, bool) else None


# -- reading ---------------------------------------------------------------------------------------
def _unique(pairs):
    keys = [k for k, _ in pairs]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise SchemaError(f"key {dup[0]!r} appears twice in one object")
    return dict(pairs)


_PHRASES = dict(
    float_type="must be a number",
    int_type="must be a whole number",
    int_from_float="must be a whole number",
    float_parsing="must be a number",
    finite_number="must be a finite number",
    string_type="must be a string",
    bool_type="must be true or false",
    list_type="must be a list",
    dict_type="must be an object",
    model_type="must be an object",
    model_attributes_type="must be an object",
    missing="is missing",
    too_short="must not be empty",
)


def _one_line(exc: ValidationError) -> str:
    """The first error of ``exc`` as ``key.path[i] must be ...; got VALUE``."""
    err = exc.errors(include_url=False)[0]
    loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "union[")))]
    number = bool(loc) and loc[-1] in ("int", "float")  # a branch of Number (int or float): say "a number"
    loc = loc[:-1] if number else loc
    where = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(loc))
    kind, ctx = err["type"], err.get("ctx") or {}
    bound = {"greater_than": "> {gt:g}", "greater_than_equal": ">= {ge:g}", "less_than": "< {lt:g}"}.get(kind)
    msg = (f"must be {bound.format(**ctx)}" if bound else _PHRASES.get(kind)) or err["msg"].removeprefix(
        "Value error, "
    ).replace("Input should be", "must be")
    msg = "must be a number" if number else msg
    if kind == "value_error":
        return (f"{where}: " if where else "") + msg
    got = "" if kind == "missing" else f"; got {err.get('input')!r}"
    return f"{where or 'value'} {msg}{got}"


def _object(text: str, name) -> dict:
    try:
        data = json.loads(text, object_pairs_hook=_unique)
    except SchemaError as exc:
        raise SchemaError(f"{name}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{name}: malformed JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise SchemaError(f"{name}: JSON nested too deeply to be a record this package wrote") from None
    if not isinstance(data, dict):
        raise SchemaError(f"{name}: expected a JSON object; got a {type(data).__name__}")
    return data


def _validate(data: dict, schema, name):
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        hint = f" (rerun {schema.writer} to rewrite it)" if schema.writer else ""
        raise SchemaError(f"{name}: {_one_line(exc)}{hint}") from None


def parse(text: str, schema, name="the file"):
    """``schema`` from JSON ``text``: one-line :class:`SchemaError` naming ``name`` on any mismatch
    (malformed JSON, a key twice in one object, a wrong type or value)."""
    return _validate(_object(text, name), schema, name)


def read_source(path):
    """``--from`` of ``dbs schedule``: a :class:`FitFile` (an object with ``rows``) or a :class:`FrontierFile`
    (one with ``targets``); one line otherwise."""
    data = _load(path)
    schema = FitFile if "rows" in data else FrontierFile if "targets" in data else None
    if schema is None:
        raise SchemaError(f"{path}: has neither 'rows' (dbs fit) nor 'targets' (dbs simulate)")
    return _validate(data, schema, str(path))


def _load(path) -> dict:
    """The JSON object in the regular file ``path`` (one-line :class:`SchemaError` otherwise)."""
    from .log_files import regular_file

    p = Path(path)
    regular_file(p)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise SchemaError(f"{path}: not a UTF-8 text file") from None
    return _object(text, str(path))


def read(path, schema):
    """``schema`` read from the file at ``path`` (see :func:`parse`); only a regular file is opened."""
    return _validate(_load(path), schema, str(path))

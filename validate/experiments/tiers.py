"""Experiment tiers: the model, learning rate, batch grid and token budgets of each scale.

``tiny`` finishes in seconds (tests), ``cpu`` in well under an hour per
experiment on 2 cores, ``gpu`` is sized for one H100. Data amounts and batch
sizes are tokens; a tier's runs all share one learning rate, warmup, seed and
data order, so they differ only in what an experiment varies.
"""

from __future__ import annotations

import math
import re
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path

__all__ = ["Tier", "TIERS", "get_tier", "load_tier"]


@dataclass(frozen=True)
class Tier:
    """One scale of the experiments.

    Attributes
    ----------
    preset : str              Model preset (``validate.model.PRESETS``).
    seq_len : int             Tokens per sequence.
    lr, weight_decay : float  AdamW settings shared by every run.
    warmup : float            Warmup, tokens (linear from 0), then the stable phase.
    batches : tuple           The sweep's fixed batch sizes, tokens (log-spaced, >= 12 for real tiers).
    sweep_tokens : float      The sweep's longest run, tokens.
    sweep_steps : int         Runs stop after this many steps if that comes first (small batches).
    budget : float            Token budget of the schedule experiment and the ablations.
    decay_tokens : float      Extra tokens of the WSD decay branch (``decay`` ablation).
    seeds : tuple             Seeds of the schedule experiment (>= 2 for real tiers).
    max_seeds : int           Most seeds the schedule experiment grows to while a comparison is undecided.
    ablation_seeds : tuple    Seeds of each ablation's arms (one seed borrows the schedule experiment's spread).
    growth_seeds : tuple      Fresh seeds of the growth experiment (empty: ``seeds``); seed 0 is always left out.
    max_micro : int           Largest micro-batch, sequences (larger batches accumulate).
    dyn_micro : int           Micro-batch of the schedule comparisons, sequences: the batch granularity.
    eval_every_tokens : float Validation every this many tokens.
    eval_tokens : int         Size of the fixed held-out validation slice, tokens.
    final_eval_tokens : int   Size of the slice each run's final evaluation reads (final comparisons), tokens.
    eval_block : int          Read the held-out slices in blocks of this many tokens spread over the whole
                              validation set (0: its first tokens in order); a multiple of ``seq_len``.
    power_seeds : int         Paired seeds of the power experiment.
    interval_frac : float     Re-evaluation interval of the dynamic schedule, fraction of ``budget``.
    gns_every : int           Steps between B_simple measurements in sweep runs that accumulate.
    jobs : int                Runs trained at once (each on ``cpus // jobs`` threads).
    device : str              ``auto``, ``cpu`` or ``cuda``.
    data : str or None        Training text: a folder of text files or a uint16 ``.bin`` (None: the stdlib corpus).
    vocab_size : int or None  Vocabulary of a ``.bin``.
    data_glob : str or None   Glob of the files to read in a ``data`` folder.
    compile : int             1: ``torch.compile`` every run (the same computation, faster: ``bench_train.py``).
    launcher : Launcher or None  Where runs train (:mod:`validate.experiments.launch`; None: this machine). Set
                              by ``dbs validate --launcher``, not by a tier file; it never changes a result.
    store : LogStore or None  Finished runs' logs reused by config hash (:mod:`validate.experiments.log_store`).
                              Set by ``dbs validate --logs/--from-logs``, not by a tier file.
    """

    name: str
    preset: str
    seq_len: int
    lr: float
    weight_decay: float
    warmup: float
    batches: tuple
    sweep_tokens: float
    sweep_steps: int
    budget: float
    decay_tokens: float
    seeds: tuple = (0, 1)
    max_seeds: int = 12
    ablation_seeds: tuple = (0,)
    growth_seeds: tuple = ()
    max_micro: int = 16
    dyn_micro: int = 4
    eval_every_tokens: float = 250_000
    eval_tokens: int = 32_768
    final_eval_tokens: int = 262_144
    eval_block: int = 0
    power_seeds: int = 6
    interval_frac: float = 0.05
    gns_every: int = 10
    jobs: int = 2
    device: str = "auto"
    data: str | None = None
    vocab_size: int | None = None
    data_glob: str | None = None
    compile: int = 0
    extra: dict = field(default_factory=dict)
    launcher: object = None
    store: object = None

    def with_(self, **kw) -> "Tier":
        return replace(self, **kw)


#: tier fields a tier file cannot set: ``extra`` (code's own), ``launcher`` (a command-line choice)
NOT_IN_FILES = ("extra", "launcher", "store")

_CPU_BATCHES = tuple(64 * n for n in (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256))  # 128..16384
_GPU_BATCHES = tuple(1024 * n for n in (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024))  # 16K .. 1M

TIERS = {
    "tiny": Tier(
        "tiny",
        "tiny",
        32,
        3e-3,
        0.1,
        1_000,
        (128, 256, 512, 1024),
        12_000,
        60,
        12_000,
        3_000,
        seeds=(0, 1),
        max_seeds=2,
        max_micro=8,
        dyn_micro=2,
        eval_every_tokens=3_000,
        eval_tokens=2_048,
        final_eval_tokens=4_096,
        interval_frac=0.1,
        power_seeds=3,
        gns_every=5,
        jobs=1,
    ),
    "cpu": Tier(
        "cpu",
        "tiny",
        64,
        3e-3,
        0.1,
        100_000,
        _CPU_BATCHES,
        6_000_000,
        15_000,
        6_000_000,
        1_200_000,
        seeds=(0, 1, 2, 3, 4),
        max_micro=16,
        eval_every_tokens=250_000,
        eval_tokens=32_768,  # 5: see power
        growth_seeds=tuple(range(1, 11)),  # 10: see growth's power note in docs/findings.md
        ablation_seeds=(0, 1, 2),  # each ablation's own spread, none borrowed
        eval_block=1024,
        compile=1,
    ),  # slices spread over the validation set; inductor: ~1.6x tokens/s
    "gpu": Tier(
        "gpu",
        "gpu-124m",
        1024,
        6e-4,
        0.1,
        50_000_000,
        _GPU_BATCHES,
        2_000_000_000,
        20_000,
        2_000_000_000,
        400_000_000,
        seeds=(0, 1, 2),
        max_seeds=3,
        growth_seeds=(1, 2, 3),
        max_micro=32,
        dyn_micro=8,
        eval_every_tokens=20_000_000,
        eval_tokens=1_048_576,
        final_eval_tokens=4_194_304,
        eval_block=1024,
        jobs=1,
        compile=1,
    ),
    # gpu-quick: the gpu tier reduced to ~8 minutes on one H200 (benchmarks/gpu_quick.py): 10M parameters, bytes
    "gpu-quick": Tier(
        "gpu-quick",
        "cpu-large",
        512,
        1e-3,
        0.1,
        2_000_000,
        tuple(16_384 * 2**i for i in range(6)),
        40_000_000,
        20_000,
        40_000_000,
        8_000_000,
        seeds=(0,),
        max_seeds=1,
        max_micro=64,
        dyn_micro=16,
        eval_every_tokens=4_000_000,
        eval_tokens=262_144,
        final_eval_tokens=1_048_576,
        eval_block=1024,
        jobs=1,
        compile=1,
    ),
    # gpu: 3 seeds resolve the paper's 0.04 nats with 90% power if a paired difference varies as at the cpu tier
}


def get_tier(name: str) -> Tier:
    if name not in TIERS:
        raise ValueError(f"unknown tier {name!r}; choose one of {', '.join(TIERS)}")
    return TIERS[name]


def load_tier(path) -> Tier:
    """A tier from a TOML file: every :class:`Tier` field by name (``batches`` and ``seeds`` as lists);
    ``base = "cpu"`` (or another tier) fills the fields the file leaves out. One line names a bad field."""
    import tomllib

    from dbs_theory.logs.log_files import regular_file

    try:
        spec = tomllib.loads(regular_file(Path(path)).read_text(encoding="utf-8"))
    except OSError as exc:
        raise OSError(f"cannot read tier config {str(path)!r}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: malformed TOML ({str(exc).splitlines()[0]})") from None
    base = spec.pop("base", None)
    if base is not None and not isinstance(base, str):
        raise ValueError(f"{path}: base must name a tier ({', '.join(TIERS)}); got {base!r}")
    known = {f.name: f for f in fields(Tier) if f.name not in NOT_IN_FILES}
    unknown = sorted(set(spec) - set(known))
    if unknown:
        raise ValueError(f"{path}: unknown tier field(s) {', '.join(unknown)}; known: {', '.join(known)}")
    for k, v in spec.items():
        if (k in LISTS) != isinstance(v, list) or isinstance(v, dict):
            want = (
                ("a list, e.g. " + ("[128, 256]" if k == "batches" else "[0, 1]"))
                if k in LISTS
                else "a single value, not a list or table"
            )
            raise ValueError(f"{path}: tier field {k} must be {want}; got {v!r}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}
    values.setdefault("name", Path(path).stem)
    if base is not None:
        return _checked(get_tier(base).with_(**values), path)
    missing = [
        f.name for f in fields(Tier) if f.name not in values and f.default is MISSING and f.default_factory is MISSING
    ]
    if missing:
        raise ValueError(f"{path}: missing tier field(s) {', '.join(missing)} (or set base = 'cpu' to inherit)")
    return _checked(Tier(**values), path)


#: field -> (kind, lower bound, whether the bound itself is allowed): what a tier file may set
_KINDS = dict(
    seq_len=("int", 1, True),
    max_seeds=("int", 1, True),
    sweep_steps=("int", 1, True),
    max_micro=("int", 1, True),
    dyn_micro=("int", 1, True),
    power_seeds=("int", 1, True),
    jobs=("int", 1, True),
    eval_tokens=("int", 1, True),
    final_eval_tokens=("int", 1, True),
    eval_block=("int", 0, True),
    gns_every=("int", 0, True),
    compile=("int", 0, True),
    lr=("float", 0, False),
    sweep_tokens=("float", 0, False),
    budget=("float", 0, False),
    eval_every_tokens=("float", 0, False),
    weight_decay=("float", 0, True),
    warmup=("float", 0, True),
    decay_tokens=("float", 0, True),
    interval_frac=("float", 0, False),
)


#: tier fields that are lists in a file (tuples in a Tier)
LISTS = ("batches", "seeds", "ablation_seeds", "growth_seeds")


def _number(path, name, v, kind, low, closed):
    """Refuse ``v`` unless it is a finite ``kind`` (``int``: whole) above ``low`` (or equal, when ``closed``)."""
    whole = isinstance(v, int) or (isinstance(v, float) and v.is_integer())
    ok = (
        not isinstance(v, bool)
        and isinstance(v, (int, float))
        and math.isfinite(v)
        and (kind == "float" or whole)
        and (v >= low if closed else v > low)
    )
    if not ok:
        noun = "a whole number" if kind == "int" else "a number"
        raise ValueError(f"{path}: tier field {name} must be {noun} {'>=' if closed else '>'} {low:g}; got {v!r}")


def _checked(tier: Tier, path) -> Tier:
    """Refuse values no run could use (or that would write outside the results folder), naming the field."""
    from validate.config import PRESET_NAMES, check_device_name

    if not isinstance(tier.name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", tier.name):
        raise ValueError(
            f"{path}: tier field name must be a plain name (letters, digits, . _ -, no path); got {tier.name!r}"
        )
    if tier.preset not in PRESET_NAMES:
        raise ValueError(f"{path}: tier field preset must be one of {', '.join(PRESET_NAMES)}; got {tier.preset!r}")
    try:
        check_device_name(tier.device)
    except ValueError as exc:
        raise ValueError(f"{path}: tier field {exc}") from None
    for name, (kind, low, closed) in _KINDS.items():
        _number(path, name, getattr(tier, name), kind, low, closed)
    if tier.interval_frac > 1:
        raise ValueError(
            f"{path}: tier field interval_frac must be a fraction of the budget in (0, 1]; got {tier.interval_frac!r}"
        )
    if not tier.batches:
        raise ValueError(f"{path}: tier field batches must list positive batch sizes (tokens); got {tier.batches!r}")
    for b in tier.batches:
        _number(path, "batches", b, "int", 1, True)
        if b % tier.seq_len:
            raise ValueError(
                f"{path}: tier field batches: {b!r} tokens is not a whole number of sequences (seq_len={tier.seq_len})"
            )
    for name in LISTS[1:]:
        for v in getattr(tier, name):
            _number(path, name, v, "int", 0, True)
    for name in LISTS:
        if len(set(getattr(tier, name))) < len(getattr(tier, name)):
            raise ValueError(f"{path}: tier field {name} repeats a value: {list(getattr(tier, name))!r}")
    if not tier.seeds:
        raise ValueError(f"{path}: tier field seeds must list at least one seed")
    for name in ("eval_tokens", "final_eval_tokens"):
        if getattr(tier, name) < tier.seq_len:
            raise ValueError(
                f"{path}: tier field {name}={getattr(tier, name)!r} is less than one sequence (seq_len={tier.seq_len})"
            )
    if tier.warmup >= tier.sweep_tokens:
        raise ValueError(
            f"{path}: tier field warmup={tier.warmup:g} tokens leaves no stable phase in the sweep "
            f"(sweep_tokens={tier.sweep_tokens:g})"
        )
    if tier.eval_block % tier.seq_len:
        raise ValueError(
            f"{path}: tier field eval_block must be 0 or a multiple of seq_len ({tier.seq_len}); "
            f"got {tier.eval_block!r}"
        )
    for name in ("data", "data_glob"):
        v = getattr(tier, name)
        if v is not None and not (isinstance(v, str) and v.strip()):
            raise ValueError(f"{path}: tier field {name} must be a non-empty string; got {v!r}")
    if tier.vocab_size is not None:
        _number(path, "vocab_size", tier.vocab_size, "int", 1, True)
        if tier.data is None:
            raise ValueError(f"{path}: tier field vocab_size is for a .bin data file: set data too")
    ints = {k: int(getattr(tier, k)) for k, (kind, _, _) in _KINDS.items() if kind == "int"}
    return tier.with_(batches=tuple(int(b) for b in tier.batches), **ints)  # 32.0 -> 32

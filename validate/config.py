"""The trainer's configuration: a dataclass parsed from the CLI or a JSON/TOML file (no torch)."""

from __future__ import annotations

import argparse
import json
import math
import re
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path

from dbs_theory.schedules.piecewise import Piecewise

__all__ = [
    "TrainConfig",
    "build_parser",
    "flag_of",
    "config_from_args",
    "PRESET_NAMES",
    "PRESETS",
    "MAX_MICRO",
    "seq_lengths",
    "check_device_name",
    "split_batch",
]

#: preset -> what it is (validate.model.PRESETS holds the shapes; a test keeps the two in step)
PRESETS = {
    "tiny": "2 layers x 64, ~0.1M parameters, tests",
    "cpu": "4 x 128, ~0.8M, the CPU tier",
    "cpu-large": "6 x 384, ~10M",
    "gpu-124m": "12 x 768, 124M, GPT-2 small",
    "gpu-350m": "24 x 1024, 350M",
}
PRESET_NAMES = tuple(PRESETS)
#: the largest micro-batch (sequences per process) chosen automatically for each preset
MAX_MICRO = {"tiny": 8, "cpu": 16, "cpu-large": 16, "gpu-124m": 32, "gpu-350m": 16}


def split_batch(batch_size, seq_len, world=1, micro=None, max_micro=8):
    """``(micro, accum, used_tokens)``: how a global batch of ``batch_size`` is run.

    ``micro`` sequences per process per forward pass, ``accum`` passes per
    step, so ``used_tokens = accum x micro x seq_len x world``. With ``micro``
    not given, the largest micro-batch up to ``max_micro`` that divides the
    batch (in sequences per process) is chosen, so the batch is exact whenever
    it is a whole number of sequences per process; only otherwise is it
    rounded (to the nearest whole number). A given ``micro`` rounds to its multiple.
    """
    per = seq_len * world
    if micro:
        accum = max(1, round(batch_size / (micro * per)))
        return int(micro), int(accum), int(accum * micro * per)
    n = max(1, round(batch_size / per))
    m = max(d for d in range(1, min(int(max_micro), n) + 1) if n % d == 0)
    return m, n // m, n * per


def _opt(default, help):
    """A config field whose ``help`` is its one-line documentation (the CLI help is made from it)."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Everything a run needs. Data amounts are tokens; batch sizes are tokens per step.

    Each field's documentation lives in its ``help`` metadata: ``dbs train
    --help`` is generated from it, so the help and the config file agree.
    """

    preset: str = _opt("tiny", "model size: " + "; ".join(f"{k} ({v})" for k, v in PRESETS.items()))
    seq_len: int = _opt(64, "tokens per sequence (until the first seq_len_schedule switch)")
    seq_len_schedule: str | None = _opt(
        None,
        "switch the sequence length during the run: 'D1:L1,D2:L2' = length L1 from D1 tokens on, ... (an ablation)",
    )
    micro_batch: int | None = _opt(
        None,
        "sequences per forward pass on each process; default: the largest "
        "(up to the preset's maximum) that makes every batch exact",
    )
    batch_size: float = _opt(2048, "global batch, tokens per optimizer step")
    batch_schedule: str | None = _opt(
        None,
        "a batch-size schedule JSON file from dbs schedule (tokens, or "
        "samples converted with --seq-len); overrides --batch-size",
    )
    batch_rule: str | None = _opt(
        None,
        "an online batch rule decided during the run, starting at --batch-size "
        "and never falling: noise-scale (the measured B_simple; needs --gns-every) or "
        "floor-ratio (1.5 x the sweep's Bmin at the current loss, 3 x while the rate "
        "decays; needs --rule-fit)",
    )
    rule_every: float = _opt(0.0, "tokens between the online rule's decisions (0: --tokens / 50)")
    rule_fit: str | None = _opt(None, "fit.json of a sweep (dbs fit) whose Bmin per target the floor-ratio rule reads")
    rule_max_batch: float = _opt(0.0, "largest batch the online rule may choose, tokens (0: --tokens / 10)")
    tokens: float = _opt(200_000, "length of the run, tokens")
    lr: float = _opt(3e-3, "peak learning rate")
    lr_schedule: str = _opt("wsd", "learning-rate shape: wsd (warmup, stable, decay), cosine or constant")
    warmup: float = _opt(0.02, "warmup length, fraction of --tokens")
    decay: float = _opt(0.0, "WSD decay length, fraction of --tokens (0: no decay)")
    final_ratio: float = _opt(0.1, "learning rate at the end of a decay, fraction of --lr")
    lr_rescale: str = _opt(
        "none", "on a batch change multiply the LR by (B/B0)^p: none (p=0), sqrt (1/2) or linear (1)"
    )
    beta1: float = _opt(0.9, "AdamW beta1")
    beta2: float = _opt(0.95, "AdamW beta2")
    weight_decay: float = _opt(0.1, "AdamW weight decay")
    grad_clip: float = _opt(1.0, "clip the global gradient norm to this (0: off)")
    eval_every: int = _opt(50, "steps between validation losses (and always at the end)")
    eval_every_tokens: float = _opt(0.0, "also evaluate each time this many tokens pass (0: off)")
    eval_tokens: int = _opt(16384, "tokens of the fixed held-out slice each evaluation reads")
    final_eval_tokens: int = _opt(
        0,
        "tokens of the held-out slice the run's last evaluation reads (0: "
        "--eval-tokens); final comparisons want a larger slice than the curve",
    )
    eval_block: int = _opt(
        0,
        "read the held-out slice in blocks of this many tokens spread over the whole "
        "validation set (0: its first tokens, in order); a multiple of --seq-len",
    )
    checkpoint_every: int = _opt(100, "steps between checkpoints (and always at the end and on Ctrl-C)")
    seed: int = _opt(0, "seed of the initialisation and every random draw")
    data: str | None = _opt(
        None,
        "a folder of text files or a uint16 .bin of tokens (default: the Python standard library's sources, bytes)",
    )
    data_block: int = _opt(
        0, "read the stream in shuffled blocks of this many tokens (0: in order); a multiple of every sequence length"
    )
    vocab_size: int | None = _opt(None, "vocabulary size of a .bin --data (default 256: bytes)")
    data_glob: str | None = _opt(
        None,
        "with a --data folder: read only the files matching this glob, relative to it "
        "(e.g. '**/*.txt'); binary files, links to files already read and duplicates "
        "are skipped either way",
    )
    device: str = _opt("auto", "auto (CUDA if present), cpu, cuda, cuda:N or mps")
    dtype: str = _opt("auto", "auto (bf16 autocast on CUDA, fp32 on CPU), bf16 or fp32")
    compile: int = _opt(0, "1: torch.compile the model")
    out: str = _opt("results/train", "run folder: log.csv, ckpt.pt, config.json")
    run: str | None = _opt(None, "run name in the log (default: the --out folder's name)")
    stop_at_tokens: float | None = _opt(
        None, "stop early at this many tokens, as a job time limit would (resume later with --resume)"
    )
    branch_from: str | None = _opt(None, "start from another run's ckpt.pt (e.g. a WSD decay branch)")
    gns_every: int = _opt(
        0, "measure the noise scale B_simple every N steps (0: off; needs gradient accumulation and one process)"
    )

    def validate(self):
        if self.preset not in PRESET_NAMES:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESET_NAMES)}")
        for name in ("seq_len", "micro_batch", "eval_every", "checkpoint_every"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r} must be >= 1")
        for name in ("batch_size", "tokens", "lr"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name}={v!r} must be positive")
        for name in ("eval_every_tokens", "final_eval_tokens", "gns_every"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name}={getattr(self, name)!r} must be finite and >= 0")
        for name in ("eval_tokens", "final_eval_tokens"):
            if 0 < getattr(self, name) < self.seq_len or (name == "eval_tokens" and self.eval_tokens < 1):
                raise ValueError(
                    f"{name}={getattr(self, name)!r} must be at least one sequence (seq_len={self.seq_len} tokens)"
                )
        if self.stop_at_tokens is not None and not (math.isfinite(self.stop_at_tokens) and self.stop_at_tokens > 0):
            raise ValueError(
                f"stop_at_tokens={self.stop_at_tokens!r} must be positive and finite (tokens at which to stop)"
            )
        if self.stop_at_tokens is not None and self.stop_at_tokens >= self.tokens:
            raise ValueError(
                f"stop_at_tokens={self.stop_at_tokens:g} is not before the run's end (tokens="
                f"{self.tokens:g}): nothing to stop early"
            )
        if self.batch_size > self.tokens and not self.batch_schedule:
            raise ValueError(f"batch_size={self.batch_size:g} exceeds the whole run (tokens={self.tokens:g})")
        check_device_name(self.device)
        self._validate_rule()
        if self.lr_schedule not in ("wsd", "cosine", "constant"):
            raise ValueError(f"lr_schedule={self.lr_schedule!r} must be wsd, cosine or constant")
        if self.dtype not in ("auto", "bf16", "fp32"):
            raise ValueError(f"dtype={self.dtype!r} must be auto, bf16 or fp32")
        if self.lr_rescale not in ("none", "sqrt", "linear"):
            raise ValueError(f"lr_rescale={self.lr_rescale!r} must be none, sqrt or linear")
        lengths = seq_lengths(self.seq_len_schedule, self.seq_len).values
        if self.data_block < 0 or (self.data_block and any(self.data_block % L for L in lengths)):
            raise ValueError(
                f"data_block={self.data_block!r} must be 0 or a multiple of every sequence "
                f"length ({', '.join(map(str, lengths))})"
            )
        if self.eval_block < 0 or self.eval_block % self.seq_len:
            raise ValueError(f"eval_block={self.eval_block!r} must be 0 or a multiple of seq_len={self.seq_len}")
        return self

    def _validate_rule(self):
        """The online batch rule's fields: a known rule, its inputs, no fixed schedule beside it."""
        if self.batch_rule is None:
            for name in ("rule_every", "rule_fit", "rule_max_batch"):
                if getattr(self, name):
                    raise ValueError(f"{name}={getattr(self, name)!r} needs batch_rule (an online batch rule)")
            return
        if self.batch_rule not in ("noise-scale", "floor-ratio"):
            raise ValueError(f"batch_rule={self.batch_rule!r} must be noise-scale or floor-ratio")
        if self.batch_schedule:
            raise ValueError("batch_rule and batch_schedule both set the batch: give one")
        if self.batch_rule == "noise-scale" and not self.gns_every:
            raise ValueError("batch_rule='noise-scale' reads the measured noise scale: set gns_every (e.g. 1)")
        if (self.batch_rule == "floor-ratio") != bool(self.rule_fit):
            raise ValueError("rule_fit (a sweep's fit.json) is read by batch_rule='floor-ratio' only, and it needs it")
        for name in ("rule_every", "rule_max_batch"):
            v = getattr(self, name)
            if not (math.isfinite(v) and 0 <= v < self.tokens):
                raise ValueError(f"{name}={v!r} must be finite, >= 0 and below the run (tokens={self.tokens:g})")
        if self.rule_max_batch and self.rule_max_batch < self.batch_size:
            raise ValueError(
                f"rule_max_batch={self.rule_max_batch:g} is below the starting batch_size={self.batch_size:g}"
            )

    def seq_len_at(self, D) -> int:
        """Sequence length (tokens) in use after ``D`` tokens."""
        return seq_lengths(self.seq_len_schedule, self.seq_len)(D)

    def max_seq_len(self) -> int:
        return max(seq_lengths(self.seq_len_schedule, self.seq_len).values)


def check_device_name(name):
    """Refuse a device name the trainer does not know (availability is checked where torch is loaded)."""
    if not (name in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", str(name))):
        raise ValueError(f"device={name!r} must be auto, cpu, cuda, cuda:N or mps")


def seq_lengths(text, seq_len) -> Piecewise:
    """The sequence length (tokens) as a function of tokens consumed: ``seq_len`` from 0, then ``'D1:L1,D2:L2'``.

    >>> seq_lengths("2e6:128", 64).segments
    [(0.0, 64), (2000000.0, 128)]
    """
    sched = Piecewise.parse(text, first=int(seq_len), what="seq_len_schedule", cast=int)
    if min(sched.values) < 1:
        raise ValueError(f"seq_len_schedule {text!r}: lengths must be >= 1")
    return sched


def _whole(text) -> int:
    """An integer option: ``1000``, or a whole number written as a float (``1e9``), as the float options take."""
    try:
        return int(text)
    except ValueError:
        value = float(text)  # a ValueError here is argparse's "invalid value"
        if not value.is_integer():
            raise ValueError(f"{text!r} is not a whole number") from None
        return int(value)


_whole.__name__ = "int"  # argparse names the type in its message: "invalid int value"


def flag_of(name: str) -> str:
    """The ``dbs train`` flag of the :class:`TrainConfig` field ``name``.

    >>> flag_of("seq_len_schedule")
    '--seq-len-schedule'
    """
    return "--" + name.replace("_", "-")


def build_parser(parser=None):
    p = parser or argparse.ArgumentParser(prog="python -m validate.train", description=__doc__)
    for f in fields(TrainConfig):
        kind = {"int": _whole, "float": float}.get(str(f.type).split(" ")[0], str)
        default = (
            ""
            if f.default is None
            else f" (default {f.default:g})"
            if isinstance(f.default, float)
            else f" (default {f.default})"
        )
        p.add_argument(flag_of(f.name), dest=f.name, type=kind, default=None, help=f.metadata["help"] + default)
    for old, new in DEPRECATED.items():
        p.add_argument(
            flag_of(old),
            dest=old,
            type=float,
            default=None,
            help=f"deprecated spelling of --{new.replace('_', '-')} (default: none)",
        )
    p.add_argument(
        "--config", default=None, help="a JSON or TOML file of these fields (options given on the command line win)"
    )
    p.add_argument("--resume", action="store_true", help="continue from <out>/ckpt.pt (a finished run: nothing to do)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start again in an --out folder that already holds a run (its log is replaced)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def config_from_args(args) -> TrainConfig:
    values = {}
    if args.config:
        text = Path(args.config).read_text()
        try:
            if args.config.endswith(".toml"):
                import tomllib

                values = tomllib.loads(text)
            else:
                values = json.loads(text)
        except ValueError as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
            raise ValueError(f"{args.config}: malformed config ({str(exc).splitlines()[0]})") from None
        if not isinstance(values, dict):
            raise ValueError(f"{args.config}: a config must be a JSON/TOML object of TrainConfig fields")
        values = _renamed(values, args.config)
        unknown = set(values) - {f.name for f in fields(TrainConfig)}
        if unknown:
            raise ValueError(f"{args.config}: unknown config field(s) {', '.join(sorted(unknown))}")
        values = {k: _typed(k, v, args.config) for k, v in values.items()}
    values.update(
        _renamed({k: getattr(args, k) for k in DEPRECATED if getattr(args, k, None) is not None}, "the command line")
    )
    values.update(
        {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    )
    return TrainConfig(**values)


#: Old field name -> new one; the old spelling still works, with a DeprecationWarning.
DEPRECATED = {"batch_tokens": "batch_size"}


def _renamed(values: dict, source) -> dict:
    """``values`` with deprecated field names replaced by their new ones (warning once per name)."""
    out = dict(values)
    for old, new in DEPRECATED.items():
        if old in out:
            warnings.warn(
                f"{source}: {old!r} is now called {new!r}; the old name will be removed",
                DeprecationWarning,
                stacklevel=3,
            )
            out.setdefault(new, out.pop(old))
            out.pop(old, None)
    return out


def _typed(name, value, source):
    """A config-file value converted to its field's type; ``ValueError`` naming the field otherwise."""
    kind = str(next(f.type for f in fields(TrainConfig) if f.name == name))
    if value is None and "None" in kind:
        return None
    want = kind.split(" ")[0]
    try:
        if want == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if want == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if not isinstance(value, str):
            raise ValueError
        return value
    except (TypeError, ValueError, OverflowError):
        noun = {"int": "a whole number", "float": "a number"}.get(want, "a string")
        raise ValueError(f"{source}: field {name!r} must be {noun}; got {value!r}") from None

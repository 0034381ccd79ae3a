"""The trainer's configuration: a dataclass parsed from the CLI or a JSON/TOML file (no torch)."""
from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import dataclass, fields
from pathlib import Path

__all__ = ["TrainConfig", "build_parser", "config_from_args", "PRESET_NAMES", "parse_seq_len_schedule",
           "check_device_name"]

PRESET_NAMES = ("tiny", "cpu", "cpu-large", "gpu-124m", "gpu-350m")


@dataclass
class TrainConfig:
    """Everything a run needs. Data amounts are tokens; batch sizes are tokens per step."""

    preset: str = "tiny"
    seq_len: int = 64                      # tokens per sequence (until the first seq_len_schedule switch)
    seq_len_schedule: str | None = None    # 'D1:L1,D2:L2': switch to length L1 at D1 tokens, ... (ablation)
    micro_batch: int = 8
    batch_tokens: float = 2048
    batch_schedule: str | None = None      # a dbs_theory schedule JSON file (overrides batch_tokens)
    tokens: float = 200_000
    lr: float = 3e-3
    lr_schedule: str = "wsd"               # wsd | cosine | constant
    warmup: float = 0.02                   # fractions of `tokens`
    decay: float = 0.0
    final_ratio: float = 0.1
    lr_rescale: str = "none"               # none | sqrt | linear, relative to the first batch
    beta1: float = 0.9
    beta2: float = 0.95
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 50                   # steps between validation losses (and always at the end)
    eval_every_tokens: float = 0.0         # also evaluate each time this many tokens pass (0 = off)
    eval_tokens: int = 16384
    checkpoint_every: int = 100
    seed: int = 0
    data: str | None = None
    data_block: int = 0                    # shuffle the stream in blocks of this many tokens (0 = in order)
    vocab_size: int | None = None
    device: str = "auto"
    dtype: str = "auto"                    # auto (bf16 autocast on CUDA, fp32 on CPU) | bf16 | fp32
    compile: int = 0                       # 1: torch.compile the model
    out: str = "results/train"
    run: str | None = None
    stop_at_tokens: float | None = None    # stop early (as a job time limit would); resume later
    branch_from: str | None = None         # start from another run's ckpt.pt (e.g. a WSD decay branch)
    gns_every: int = 0                     # measure B_simple every N steps (0 = off); needs accum > 1, one process

    def validate(self):
        if self.preset not in PRESET_NAMES:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESET_NAMES)}")
        for name in ("seq_len", "micro_batch", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r} must be >= 1")
        for name in ("batch_tokens", "tokens", "lr"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name}={v!r} must be positive")
        if self.batch_tokens > self.tokens and not self.batch_schedule:
            raise ValueError(f"batch_tokens={self.batch_tokens:g} exceeds the whole run (tokens={self.tokens:g})")
        check_device_name(self.device)
        if self.lr_schedule not in ("wsd", "cosine", "constant"):
            raise ValueError(f"lr_schedule={self.lr_schedule!r} must be wsd, cosine or constant")
        if self.dtype not in ("auto", "bf16", "fp32"):
            raise ValueError(f"dtype={self.dtype!r} must be auto, bf16 or fp32")
        if self.lr_rescale not in ("none", "sqrt", "linear"):
            raise ValueError(f"lr_rescale={self.lr_rescale!r} must be none, sqrt or linear")
        _, lengths = parse_seq_len_schedule(self.seq_len_schedule, self.seq_len)
        if self.data_block < 0 or (self.data_block and any(self.data_block % L for L in lengths)):
            raise ValueError(f"data_block={self.data_block!r} must be 0 or a multiple of every sequence "
                             f"length ({', '.join(map(str, lengths))})")
        return self

    def seq_len_at(self, D) -> int:
        """Sequence length (tokens) in use after ``D`` tokens."""
        starts, lengths = parse_seq_len_schedule(self.seq_len_schedule, self.seq_len)
        return next(L for s, L in zip(starts[::-1], lengths[::-1]) if D >= s)

    def max_seq_len(self) -> int:
        return max(parse_seq_len_schedule(self.seq_len_schedule, self.seq_len)[1])


def check_device_name(name):
    """Refuse a device name the trainer does not know (availability is checked where torch is loaded)."""
    if not (name in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", str(name))):
        raise ValueError(f"device={name!r} must be auto, cpu, cuda, cuda:N or mps")


def parse_seq_len_schedule(text, seq_len):
    """``(starts, lengths)`` in tokens from ``'D1:L1,D2:L2'`` (``seq_len`` holds from 0 to ``D1``).

    >>> parse_seq_len_schedule("2e6:128", 64)
    ([0.0, 2000000.0], [64, 128])
    """
    starts, lengths = [0.0], [int(seq_len)]
    if not text:
        return starts, lengths
    for item in str(text).split(","):
        try:
            d, length = item.split(":")
            d, length = float(d), int(length)
        except ValueError:
            raise ValueError(f"seq_len_schedule must look like '2e6:128,4e6:256'; got {text!r}") from None
        if not (math.isfinite(d) and d > starts[-1]) or length < 1:
            raise ValueError(f"seq_len_schedule {text!r}: switch points must increase from > 0 "
                             f"and lengths be >= 1 (bad item {item!r})")
        starts.append(d)
        lengths.append(length)
    return starts, lengths


def build_parser(parser=None):
    p = parser or argparse.ArgumentParser(prog="python -m validate.train", description=__doc__)
    for f in fields(TrainConfig):
        kind = {"int": int, "float": float}.get(str(f.type).split(" ")[0], str)
        p.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=kind, default=None)
    p.add_argument("--config", default=None, help="a JSON or TOML file of TrainConfig fields")
    p.add_argument("--resume", action="store_true", help="continue from <out>/ckpt.pt")
    p.add_argument("--overwrite", action="store_true",
                   help="start again in an --out folder that already holds a run (its log is replaced)")
    p.add_argument("--quiet", action="store_true")
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
        unknown = set(values) - {f.name for f in fields(TrainConfig)}
        if unknown:
            raise ValueError(f"{args.config}: unknown config field(s) {', '.join(sorted(unknown))}")
        values = {k: _typed(k, v, args.config) for k, v in values.items()}
    values.update({f.name: getattr(args, f.name) for f in fields(TrainConfig)
                   if getattr(args, f.name, None) is not None})
    return TrainConfig(**values)


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



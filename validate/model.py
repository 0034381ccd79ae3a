"""A small decoder-only transformer in the modern dense style.

RMSNorm, rotary position embeddings, a SwiGLU MLP, no biases, and
``torch.nn.functional.scaled_dot_product_attention``. Hyperparameters live
in :class:`ModelConfig`; :data:`PRESETS` names sizes from ``tiny`` (tests)
to GPU sizes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ModelConfig", "PRESETS", "Transformer", "preset"]


@dataclass(frozen=True)
class ModelConfig:
    """Model shape. ``vocab_size`` 256 is byte-level; ``seq_len`` bounds the rotary table."""

    n_layer: int = 2
    n_head: int = 2
    d_model: int = 64
    vocab_size: int = 256
    seq_len: int = 256
    mlp_ratio: float = 8 / 3

    @property
    def d_ff(self) -> int:
        return int(64 * math.ceil(self.mlp_ratio * self.d_model / 64))


PRESETS = {
    "tiny": ModelConfig(n_layer=2, n_head=2, d_model=64),  # ~0.1M parameters, tests
    "cpu": ModelConfig(n_layer=4, n_head=4, d_model=128),  # ~0.8M, the CPU tier
    "cpu-large": ModelConfig(n_layer=6, n_head=6, d_model=384),  # ~10M
    "gpu-124m": ModelConfig(n_layer=12, n_head=12, d_model=768, vocab_size=50304, seq_len=1024),
    "gpu-350m": ModelConfig(n_layer=24, n_head=16, d_model=1024, vocab_size=50304, seq_len=1024),
}


def preset(name: str, **overrides) -> ModelConfig:
    """A named preset, with field overrides (e.g. ``vocab_size``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return ModelConfig(**{**asdict(PRESETS[name]), **overrides})


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def _rotary(seq_len, head_dim, base=10000.0):
    inv = 1.0 / base ** (torch.arange(0, head_dim, 2).float() / head_dim)
    ang = torch.outer(torch.arange(seq_len).float(), inv)  # (T, hs/2)
    return torch.cos(ang), torch.sin(ang)


def _apply_rotary(x, cos, sin):
    x1, x2 = x[..., ::2], x[..., 1::2]  # (B, nh, T, hs/2) each
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.norm1, self.norm2 = RMSNorm(cfg.d_model), RMSNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.gate_up = nn.Linear(cfg.d_model, 2 * cfg.d_ff, bias=False)
        self.down = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(C, dim=2)
        shape = (B, T, self.n_head, C // self.n_head)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        q, k = _apply_rotary(q, cos, sin), _apply_rotary(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        gate, up = self.gate_up(self.norm2(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up)


class Transformer(nn.Module):
    """Decoder-only language model; ``forward(idx, targets)`` returns ``(logits, loss)``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.d_model % cfg.n_head or (cfg.d_model // cfg.n_head) % 2:
            raise ValueError(f"d_model={cfg.d_model} must split into {cfg.n_head} heads of even size")
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        cos, sin = _rotary(cfg.seq_len, cfg.d_model // cfg.n_head)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.apply(self._init)
        for b in self.blocks:  # scaled residual projections (GPT-2's depth scaling)
            for w in (b.proj.weight, b.down.weight):
                nn.init.normal_(w, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    def forward(self, idx, targets=None):
        T = idx.shape[1]
        if T > self.cfg.seq_len:
            raise ValueError(f"sequence length {T} exceeds the model's seq_len={self.cfg.seq_len}")
        x = self.embed(idx)
        for b in self.blocks:
            x = b(x, self.cos[:T], self.sin[:T])
        logits = self.head(self.norm(x))
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss

    def n_params(self) -> int:
        """Parameters, counting the embedding (which is not tied to the head)."""
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self, seq_len=None) -> float:
        """Training FLOPs per token: 6 N plus attention's 12 L T d (PaLM appendix B)."""
        T = seq_len or self.cfg.seq_len
        n = self.n_params() - self.embed.weight.numel()
        return 6 * n + 12 * self.cfg.n_layer * T * self.cfg.d_model

"""Training data: the embedded default corpus and a token-indexed sampler.

The default corpus is the Python standard library's own ``.py`` sources
(tests and site-packages excluded): every Python install ships them, so
nothing is downloaded. Files are listed in sorted order and read as bytes
(vocabulary 256). The corpus differs between Python versions, so its size
and a content hash go into every run's log. Users may pass a folder of
text files or a nanoGPT-style ``.bin`` of uint16 tokens.

The sampler is indexed by tokens consumed, not by sequences: a batch of
``n`` sequences of length ``T`` at data position ``p`` uses the logical
tokens ``[p, p + n T)``. A change of batch size or sequence length, or a
resume, therefore takes exactly the next tokens. With ``block > 0`` the
logical stream is the training text cut into blocks of ``block`` tokens in a
fixed pseudo-random order (a bijection, so still no token is repeated or
skipped): a batch then holds sequences from many places in the corpus, as in
real pretraining, instead of one stretch of one file. Targets are always the
true next token of the text.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Corpus", "load_corpus", "text_files", "stdlib_files", "batch_at", "physical"]

_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}


def stdlib_files(root=None):
    """Sorted ``.py`` files of the standard library, without tests and site-packages."""
    root = Path(root or sysconfig.get_paths()["stdlib"])
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("test"))
        out.extend(Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py"))
    return sorted(out)


@dataclass(frozen=True)
class Corpus:
    """Train and validation token streams (uint16) plus provenance.

    ``read`` lists the files used (resolved paths, in order); ``skipped`` the
    ``(path, reason)`` of every file a text folder held but was not used.
    """

    train: np.ndarray
    val: np.ndarray
    vocab_size: int
    name: str
    sha256: str
    n_files: int
    read: tuple = ()
    skipped: tuple = ()

    def describe(self) -> str:
        return (
            f"{self.name}: {self.train.size:,} train + {self.val.size:,} val tokens, "
            f"{self.n_files} files, sha256 {self.sha256[:12]}"
        )


def _from_files(files, name, val_every=20):
    """Bytes of each file, separated by a NUL byte; every ``val_every``-th file is validation."""
    train, val, h = [], [], hashlib.sha256()
    for i, f in enumerate(files):
        data = Path(f).read_bytes() + b"\0"
        h.update(data)
        (val if i % val_every == 0 else train).append(data)
    if not train or not val:
        raise ValueError(f"{name}: need at least {val_every + 1} files to split train/validation by file")
    to_tokens = lambda parts: np.frombuffer(b"".join(parts), dtype=np.uint8).astype(np.uint16)
    return Corpus(to_tokens(train), to_tokens(val), 256, name, h.hexdigest(), len(files))


def text_files(folder, pattern=None):
    """``(read, skipped)``: the text files of ``folder`` the way users' folders really are.

    Every regular file under ``folder`` (or those matching the glob ``pattern``,
    relative to it), in sorted order, with symlinks resolved so each real file
    is read once; a file whose content was already read (same SHA-256) is a
    duplicate; one with a NUL byte or that is not UTF-8 is binary; an
    unreadable one is named with its error, and so is a broken symlink. ``read``: resolved paths;
    ``skipped``: ``(path, reason)``.
    """
    root = Path(folder)
    found = sorted(root.glob(pattern) if pattern else root.rglob("*"))
    read, skipped, seen_paths, seen_hashes = [], [], {}, {}
    for f in found:
        if not f.is_file():
            if f.is_symlink():  # a link to nothing (is_file follows links)
                skipped.append((str(f), "broken symlink"))
            continue
        real = f.resolve()
        if real in seen_paths:  # a symlink (or a second path) to a file already met
            skipped.append((str(f), f"the same file as {seen_paths[real]} (linked)"))
            continue
        seen_paths[real] = str(f)
        try:
            data = real.read_bytes()
        except OSError as exc:
            skipped.append((str(f), f"unreadable ({exc.strerror or exc})"))
            continue
        reason = _not_text(data)
        digest = hashlib.sha256(data).hexdigest()
        if reason is None and digest in seen_hashes:
            reason = f"duplicate of {seen_hashes[digest]}"
        if reason:
            skipped.append((str(f), reason))
            continue
        seen_hashes[digest] = str(f)
        read.append(real)
    return read, skipped


def _not_text(data: bytes):
    """Why ``data`` is not text (NUL bytes, not UTF-8), or ``None``."""
    if b"\0" in data:
        return "binary (NUL bytes)"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "binary (not UTF-8)"
    return None


@functools.lru_cache(maxsize=4)
def load_corpus(path=None, vocab_size=None, pattern=None) -> Corpus:
    """The default stdlib corpus, a folder of text files, or a ``.bin`` of uint16 tokens.

    A folder is read with :func:`text_files` (``pattern``: an optional glob).
    A ``.bin`` has no file boundaries, so its last 5% is held out for validation.
    Cached per process (runs trained one after another in a process read it once).
    """
    if path is None:
        return _from_files(stdlib_files(), "python-stdlib")
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such data path: {str(p)!r}")
    if p.is_dir():
        files, skipped = text_files(p, pattern)
        if not files:
            raise ValueError(
                f"{p}: no text files{f' matching {pattern!r}' if pattern else ''} "
                f"({len(skipped)} skipped: {skipped[0][1] if skipped else 'empty folder'})"
            )
        c = _from_files(files, str(p))
        return Corpus(
            c.train, c.val, c.vocab_size, c.name, c.sha256, c.n_files, tuple(str(f) for f in files), tuple(skipped)
        )
    if p.suffix != ".bin":
        raise ValueError(f"data: must be a folder of text files or a .bin of uint16 tokens; got {str(p)!r}")
    if not vocab_size:
        raise ValueError("vocab_size: a .bin corpus needs its vocabulary size")
    toks = np.fromfile(p, dtype=np.uint16)
    if toks.size < 1000:
        raise ValueError(f"{p}: only {toks.size} tokens")
    if int(toks.max()) >= vocab_size:
        raise ValueError(f"vocab_size: {p} holds token id {int(toks.max())} >= {vocab_size}")
    cut = int(toks.size * 0.95)
    digest = hashlib.sha256(toks.tobytes()).hexdigest()
    return Corpus(toks[:cut], toks[cut:], int(vocab_size), str(p), digest, 1)


@functools.lru_cache(maxsize=8)
def _block_order(n_blocks: int) -> np.ndarray:
    """The fixed block permutation (seed 0: the same data order for every run and seed)."""
    return np.random.default_rng(0).permutation(n_blocks)


def physical(position, n, N, block=0):
    """Stream indices of the logical positions ``position .. position + n - 1`` (wrapping)."""
    p = position + np.arange(n)
    if not block:
        return p % N
    nb = N // block
    j, o = (p // block) % nb, p % block
    return _block_order(nb)[j] * block + o


def batch_at(tokens: np.ndarray, position: int, n_seq: int, seq_len: int, block: int = 0):
    """Inputs and targets ``(n_seq, seq_len)`` for the logical tokens starting at ``position``.

    Sequence ``i`` covers logical positions ``position + i*seq_len`` to
    ``position + (i+1)*seq_len``; targets are the tokens that follow each
    input in the text. Positions wrap around the stream (a new pass over the
    data). ``block`` (tokens; 0 = off) shuffles blocks as in the module doc;
    keep it a multiple of ``seq_len`` so no sequence straddles two blocks.
    """
    N = tokens.size
    idx = physical(position, n_seq * seq_len, N, block)
    x = tokens[idx].astype(np.int64).reshape(n_seq, seq_len)
    y = tokens[(idx + 1) % N].astype(np.int64).reshape(n_seq, seq_len)
    return x, y

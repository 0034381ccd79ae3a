"""docs/integrations.md: every ```python block runs as written (one section per framework), each in a fresh
namespace and folder; a block that fails (a planted error, a wrong assertion) fails its test."""

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "integrations.md"
#: section title -> the packages its block needs (an extra the CI installs; skipped only where absent)
NEEDS = {
    "Hugging Face Trainer": ("torch", "transformers", "accelerate"),
    "PyTorch Lightning": ("torch", "lightning"),
    "Plain PyTorch (also under DDP)": ("torch",),
    "Megatron-LM": (),
}


def blocks(text):
    """``{section title: [python block, ...]}`` of a Markdown text (sections are ``## `` headings)."""
    out, title = {}, None
    for part in re.split(r"^## (.+)$", text, flags=re.M)[1:]:
        if title is None:
            title = part.strip()
            continue
        out[title] = re.findall(r"```python\n(.*?)```", part, re.S)
        title = None
    return out


def run_block(code, where, cwd, monkeypatch):
    """Execute one block in ``cwd`` as ``docs/integrations.md: <where>`` (its errors propagate)."""
    monkeypatch.chdir(cwd)
    scope = {"__name__": "__docs__"}
    exec(compile(code, f"docs/integrations.md: {where}", "exec"), scope)
    return scope


def test_every_section_has_one_block_and_a_test():
    found = blocks(DOC.read_text(encoding="utf-8"))
    assert set(found) == set(NEEDS)
    assert all(len(b) == 1 for b in found.values()), {t: len(b) for t, b in found.items()}


@pytest.mark.parametrize("title", list(NEEDS))
def test_the_block_runs(title, tmp_path, monkeypatch):
    for pkg in NEEDS[title]:
        pytest.importorskip(pkg)
    if "torch" in NEEDS[title]:
        import torch

        torch.set_num_threads(1)
    (code,) = blocks(DOC.read_text(encoding="utf-8"))[title]
    run_block(code, title, tmp_path, monkeypatch)


def test_a_planted_error_in_a_block_fails(tmp_path, monkeypatch):
    (code,) = blocks(DOC.read_text(encoding="utf-8"))["Megatron-LM"]
    planted = code.replace('"0:768 256B:1536 512B:3072"', '"0:768 250B:1536 500B:3072"', 1)
    assert planted != code
    with pytest.raises(AssertionError):
        run_block(planted, "Megatron-LM (planted)", tmp_path, monkeypatch)

"""The CLI teaches: every option of every subcommand has help, and README only names options that exist."""

import argparse
import re
from pathlib import Path

import pytest
from dbs_cli import dbs

from dbs_theory.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def subparsers():
    p = build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


@pytest.mark.parametrize("name", sorted(subparsers()))
def test_every_option_has_help_with_its_default_and_the_command_has_examples(name):
    sp = subparsers()[name]
    fmt = sp._get_formatter()
    for a in sp._actions:
        if a.dest == "help":
            continue
        text = fmt._get_help_string(a)
        assert text and len(text) > 8, f"dbs {name} {a.option_strings or a.dest}: no help"
        if a.option_strings and a.default not in (None, False):
            assert "default" in text, f"dbs {name} {a.option_strings}: the default is not stated"
    assert sp.epilog and f"dbs {name}" in sp.epilog, f"dbs {name} --help has no example command line"


def test_the_train_help_comes_from_the_config_fields():
    from dataclasses import fields

    from validate.config import TrainConfig

    sp = subparsers()["train"]
    helps = {a.dest: a.help for a in sp._actions}
    for f in fields(TrainConfig):
        assert helps[f.name].startswith(f.metadata["help"])
    assert all(name in helps["preset"] for name in ("tiny", "cpu-large", "gpu-124m", "124M"))


def test_presets_documented_for_the_cli_are_the_models_presets():
    pytest.importorskip("torch")
    from validate.config import MAX_MICRO, PRESETS
    from validate.model import PRESETS as MODEL_PRESETS

    assert list(PRESETS) == list(MODEL_PRESETS) == list(MAX_MICRO)


def test_readme_and_docs_name_only_options_the_parsers_have():
    parsers = subparsers()
    known = {name: {o for a in sp._actions for o in a.option_strings} for name, sp in parsers.items()}
    bad = []
    text = "\n".join(p.read_text() for p in [README, *sorted((README.parent / "docs").glob("*.md"))])
    for line in text.splitlines():
        for m in re.finditer(r"\bdbs (\w+)\b", line):
            cmd = m.group(1)
            if cmd not in known:
                continue
            rest = line[m.end() :].split("#")[0].split("dbs ")[0]
            bad += [(cmd, o) for o in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest) if o not in known[cmd]]
    assert not bad, f"README names options that do not exist: {sorted(set(bad))}"


def test_split_batch_is_exact_whenever_a_micro_batch_can_be():
    from hypothesis import given, strategies as st

    from validate.config import split_batch

    @given(
        seqs=st.integers(1, 400),
        seq_len=st.sampled_from([16, 32, 64]),
        world=st.integers(1, 4),
        max_micro=st.integers(1, 32),
    )
    def exact(seqs, seq_len, world, max_micro):
        micro, accum, used = split_batch(seqs * seq_len * world, seq_len, world, max_micro=max_micro)
        assert used == seqs * seq_len * world and micro * accum == seqs and 1 <= micro <= max_micro
        # the largest such micro-batch: no larger divisor of seqs fits under max_micro
        assert not any(seqs % m == 0 for m in range(micro + 1, min(max_micro, seqs) + 1))

    exact()
    assert split_batch(200, 64) == (3, 1, 192)  # 3.125 sequences: the nearest whole number
    assert split_batch(200, 32, micro=4) == (4, 2, 256)  # a given micro-batch rounds to its multiple


@pytest.mark.parametrize("batch, used", [(128, 128), (192, 192), (200, 192)])
def test_dbs_train_runs_the_batch_asked_for(tmp_path, batch, used):
    pytest.importorskip("torch")
    import csv
    import json

    out = tmp_path / "r"
    r = dbs("train", "--preset", "tiny", "--batch-size", batch, "--tokens", "4096", "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert {int(x["batch_size"]) for x in rows} == {used}
    tokens = [0] + [int(x["tokens"]) for x in rows]
    assert all(b - a == used for a, b in zip(tokens, tokens[1:]))  # the token column steps by the batch run
    rounding = json.loads((out / "config.json").read_text())["batch_rounding"]
    assert (rounding == []) is (batch == used)
    assert (batch == used) is ("ran as" not in r.stdout)


def test_a_default_of_zero_is_shown_in_help():
    """`0 in (None, False)` is True in Python, which once hid every default of 0 (e.g. --seed)."""
    out = dbs("plan", "--help").stdout
    line = next(x for x in out.splitlines() if x.strip().startswith("--seed SEED"))
    assert "(default 0)" in line

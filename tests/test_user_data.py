"""Users' data and scale in dbs validate: a text folder read the way real folders are, and a tier from TOML."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")

from validate.data import load_corpus, text_files  # noqa: E402
from validate.experiments.tiers import get_tier, load_tier  # noqa: E402

TEXT = "def f(x):\n    return x * {i}  # some text to learn from, file {i}\n" * 40


def messy_folder(root, n=24):
    """``n`` text files plus a binary file, a non-UTF-8 file, a link to a text file, a duplicate, a folder link."""
    root.mkdir()
    for i in range(n):
        (root / f"t{i:02d}.txt").write_text(TEXT.format(i=i))
    (root / "blob.bin").write_bytes(b"\x00\x01\x02" * 100)
    (root / "latin1.txt").write_bytes("caf\xe9 cr\xe8me\n".encode("latin-1") * 10)
    os.symlink(root / "t00.txt", root / "link.txt")
    (root / "copy.txt").write_text(TEXT.format(i=0))
    (root / "sub").mkdir()
    (root / "sub" / "deep.md").write_text(TEXT.format(i=99))
    return root


def test_a_messy_folder_is_read_once_per_real_text_file(tmp_path):
    root = messy_folder(tmp_path / "data")
    read, skipped = text_files(root)
    why = {os.path.basename(p): r for p, r in skipped}
    assert len(read) == 25 and len(set(read)) == 25  # 24 + sub/deep.md, each real file once
    assert why["blob.bin"].startswith("binary (NUL") and why["latin1.txt"] == "binary (not UTF-8)"
    # t00.txt, its copy and a link to it: one is read (sorted order decides which), the others name it
    same = {"t00.txt", "copy.txt", "link.txt"}
    assert len(same & set(why)) == 2 and all("duplicate of" in why[n] or "(linked)" in why[n] for n in same & set(why))
    assert sum("(linked)" in why[n] for n in same & set(why)) == 1
    only_md, _ = text_files(root, "**/*.md")
    assert [os.path.basename(p) for p in only_md] == ["deep.md"]


def test_a_broken_symlink_is_named_not_dropped(tmp_path):
    root = messy_folder(tmp_path / "data")
    os.symlink(root / "gone.txt", root / "dangling.txt")  # its target does not exist
    read, skipped = text_files(root)
    assert len(read) == 25 and dict((os.path.basename(p), r) for p, r in skipped)["dangling.txt"] == "broken symlink"


def test_the_corpus_records_what_it_read_and_skipped(tmp_path):
    c = load_corpus(str(messy_folder(tmp_path / "data")))
    assert c.n_files == 25 == len(c.read) and len(c.skipped) == 4
    with pytest.raises(ValueError, match="no text files matching"):
        load_corpus(str(tmp_path / "data"), None, "*.nothing")


def test_a_tier_from_toml_inherits_or_names_what_is_missing(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text('base = "tiny"\nbatches = [128, 256]\nlr = 1e-3\n')
    t = load_tier(f)
    assert t.name == "mine" and t.batches == (128, 256) and t.lr == 1e-3 and t.seq_len == get_tier("tiny").seq_len
    f.write_text("lr = 1e-3\n")
    with pytest.raises(ValueError, match="missing tier field.*preset"):
        load_tier(f)
    f.write_text('base = "tiny"\nbatchez = [1]\n')
    with pytest.raises(ValueError, match="unknown tier field.*batchez"):
        load_tier(f)
    f.write_text('base = "tiny"\nbatches = [128, -4]\n')
    with pytest.raises(ValueError, match="batches"):
        load_tier(f)


@pytest.mark.slow
def test_dbs_validate_sweep_on_a_user_folder_with_a_tier_defined_only_in_a_file(tmp_path):
    data = messy_folder(tmp_path / "data", n=30)
    tiny = get_tier("tiny")
    fields = dict(
        name="mine",
        preset="tiny",
        seq_len=32,
        lr=3e-3,
        weight_decay=0.1,
        warmup=500,
        batches=[128, 256, 512],
        sweep_tokens=6000,
        sweep_steps=50,
        budget=6000,
        decay_tokens=1500,
        seeds=[0, 1],
        max_micro=8,
        dyn_micro=2,
        eval_every_tokens=3000,
        eval_tokens=1024,
        jobs=1,
        gns_every=tiny.gns_every,
    )
    toml = "\n".join(f"{k} = {json.dumps(v)}" for k, v in fields.items()) + "\n"
    (tmp_path / "mine.toml").write_text(toml)
    out = tmp_path / "res"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "dbs_theory.cli",
            "validate",
            "sweep",
            "--tier-config",
            str(tmp_path / "mine.toml"),
            "--data",
            str(data),
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    cfgs = sorted((out / "sweep" / "configs").glob("*.json"))
    assert len(cfgs) == 3
    run_cfg = json.loads(cfgs[0].read_text())
    assert run_cfg["config"]["data"] == str(data) and len(run_cfg["files_read"]) == 31
    assert {os.path.basename(p) for p, _ in run_cfg["files_skipped"]} >= {"blob.bin", "latin1.txt"}


@pytest.mark.parametrize("block, ok", [(0, True), (64, True), (128, True), (96, False), (-64, False)])
def test_a_tiers_eval_block_is_whole_sequences(tmp_path, block, ok):
    (tmp_path / "t.toml").write_text(f'base = "cpu"\neval_block = {block}\n')  # cpu: seq_len 64
    if ok:
        assert load_tier(tmp_path / "t.toml").eval_block == block
    else:
        with pytest.raises(ValueError, match="eval_block"):
            load_tier(tmp_path / "t.toml")

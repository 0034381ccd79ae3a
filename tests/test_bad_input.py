"""The bad-input matrix: every subcommand against bad input.

Each case must exit with code 2, print exactly one line naming the problem
(no traceback), and leave no output files behind.
"""

import json
import subprocess
import sys

import pytest
from dbs_cli import dbs


HEADER = "run,batch_size,step,tokens,loss,lr\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.csv").write_text("")
    (d / "empty.json").write_text("")
    (d / "bad.csv").write_text("this,is\nnot a log\n")
    (d / "bad.json").write_text("{nope")
    rows = [HEADER] + [f"r{b},{b},{s},{s * b},nan,0.001\n" for b in (1, 2, 4) for s in range(50)]
    (d / "nan.csv").write_text("".join(rows))
    rows = [HEADER] + [f"r{b},{b},{s},{s * b},{3 - s / 100},0.001\n" for b in (0, 2, 4) for s in range(50)]
    (d / "zero_batch.csv").write_text("".join(rows))
    rows = [HEADER] + [
        f"r{b},{b},{s},{s * b},{1 + 2 / b + 3 * 0.99**s:.6f},0.001\n"
        for b in (2, 4, 8, 16, 32, 64, 128, 256, 512)
        for s in range(0, 2000, 10)
    ]
    (d / "good.csv").write_text("".join(rows))
    (d / "afile").write_text("a regular file: nothing can be written under it")
    (d / "noresults").mkdir()
    (d / "badfit").mkdir()
    (d / "badfit" / "fit.json").write_text("{broken")
    (d / "badfit" / "es_points.csv").write_text("run,batch_size,target,S,E\n")
    (d / "sched_bad.json").write_text(json.dumps({"unit": "tokens", "segments": [{"from": 0, "batch_size": -4}]}))
    (d / "utf16.csv").write_bytes(HEADER.encode("utf-16") + "r,2,0,0,1.0,0.1\n".encode("utf-16-le"))
    (d / "binary.csv").write_bytes(bytes(range(256)) * 4)
    (d / "cell.csv").write_text(HEADER + "r2,2,0,0,3.0,0.001\nr2,2,1,2,abc,0.001\n")
    (d / "header_only.csv").write_text(HEADER)
    (d / "twin_a.csv").write_text("".join([HEADER] + [f"x,2,{s},{2 * s},{3 - s / 100},0.001\n" for s in range(50)]))
    (d / "twin_b.csv").write_text("".join([HEADER] + [f"x,4,{s},{4 * s},{3 - s / 100},0.001\n" for s in range(50)]))
    (d / "fit_small.json").write_text(
        json.dumps(
            {
                "rows": [
                    {"target": 3.0, "emin": 1e3, "bopt": 10},
                    {"target": 2.9, "emin": 1e4, "bopt": 20},
                    {"target": 2.8, "emin": 1e5, "bopt": 40},
                ]
            }
        )
    )
    (d / "sched_huge.json").write_text(json.dumps({"unit": "tokens", "segments": [{"from": 0, "batch_size": 1e30}]}))
    (d / "sched_nan.json").write_text(
        '{"unit": "tokens", "segments": [{"from": 0, "batch_size": 256}, {"from": NaN, "batch_size": 512}]}'
    )
    (d / "sched_empty.json").write_text(json.dumps({"unit": "tokens", "segments": []}))
    (d / "sched_samples.json").write_text(json.dumps({"unit": "samples", "segments": [{"from": 0, "batch_size": 8}]}))
    (d / "cfg_type.json").write_text(json.dumps({"tokens": "abc"}))
    rows = [HEADER] + [f"r{b},{b},{s},{s * b},{3 - s / 100},0.001\n" for b in (2, 4) for s in range(50)]
    (d / "two_batches.csv").write_text("".join(rows))
    (d / "wandb_cell.csv").write_text("Step,a - loss\n1,3.0\n2,abc\n")
    (d / "wandb_step.csv").write_text("Step,a - loss\n1,3.0\n,2.0\n")
    (d / "neg_tokens.csv").write_text(HEADER + "r,8,1,-8,3.0,0.001\nr,8,2,0,2.9,0.001\n")
    good = [f"r{b},{b},{s},{s * b},{1 + 2 / b + 3 * 0.99**s:.6f},0.001\n" for b in (2, 4, 8) for s in range(0, 500, 10)]
    (d / "absurd_batch.csv").write_text(
        "".join([HEADER, *good] + [f"x,7.6e300,{s},{s * 7.6e300},{3 - s / 1e3},0.001\n" for s in range(0, 500, 10)])
    )
    (d / "huge_loss.csv").write_text(
        "".join([HEADER, *good] + [f"x,16,{s},{s * 16},1e300,0.001\n" for s in range(0, 500, 10)])
    )
    (d / "bool_loss.jsonl").write_text(
        '{"run": "r", "batch_size": 8, "step": 1, "tokens": 8, "loss": 3.0}\n'
        '{"run": "r", "batch_size": 8, "step": 2, "tokens": 16, "loss": true}\n'
    )
    (d / "hf_dec" / "r").mkdir(parents=True)
    (d / "hf_dec" / "r" / "trainer_state.json").write_text(
        json.dumps(
            {
                "log_history": [
                    {"step": s, "loss": 3.0 - s / 10, "num_input_tokens_seen": t} for s, t in ((1, 8), (2, 16), (3, 4))
                ]
            }
        )
    )
    (d / "tier_seeds.toml").write_text('base = "tiny"\nseeds = ["a", "b"]\n')
    (d / "tier_extra.toml").write_text('base = "tiny"\nextra = "x"\n')
    (d / "tier_eval.toml").write_text('base = "tiny"\neval_tokens = -1\n')
    (d / "tier_interval.toml").write_text('base = "tiny"\ninterval_frac = 5.0\n')
    (d / "tier_escape.toml").write_text('base = "tiny"\nname = "../../../../elsewhere/x"\n')
    (d / "tier_preset.toml").write_text('base = "tiny"\npreset = "gpt5"\n')
    (d / "tier_device.toml").write_text('base = "tiny"\ndevice = "tpu"\n')
    (d / "tier_wd.toml").write_text('base = "tiny"\nweight_decay = -1\n')
    (d / "tier_lr.toml").write_text('base = "tiny"\nlr = inf\n')
    (d / "tier_seq.toml").write_text('base = "tiny"\nseq_len = 32.5\n')
    (d / "tier_baselist.toml").write_text('base = ["tiny"]\n')
    (d / "tier_scalar.toml").write_text('base = "tiny"\nbatches = 128\n')
    (d / "tier_frac.toml").write_text('base = "tiny"\nbatches = [100.5, 200.25]\n')
    (d / "tier_long.toml").write_text('base = "tiny"\nseq_len = 4096\n')
    (d / "tier_twice.toml").write_text('base = "tiny"\nbatches = [128, 128, 256]\n')
    return d


TRAIN = [
    "train",
    "--preset",
    "tiny",
    "--tokens",
    "2048",
    "--seq-len",
    "32",
    "--micro-batch",
    "4",
    "--batch-size",
    "256",
    "--quiet",
]

# (id, argv, words the one-line message must contain, folder that must stay free of files)
CASES = [
    ("derive-unknown", ["derive", "nope"], ["nope"], None),
    ("simulate-zero-batch", ["simulate", "--batch-sizes", "0,4", "--out", "{d}/o1"], ["batch"], "o1"),
    ("simulate-negative-batch", ["simulate", "--batch-sizes", "-5,4", "--out", "{d}/o2"], ["batch"], "o2"),
    ("simulate-target-below-floor", ["simulate", "--targets", "-1", "--out", "{d}/o3"], ["target"], "o3"),
    ("simulate-unwritable", ["simulate", "--out", "{d}/afile/x"], ["afile"], None),
    ("simulate-unstable-lr", ["simulate", "--eta", "5", "--out", "{d}/o4"], ["eta"], "o4"),
    ("fit-missing", ["fit", "{d}/missing.csv", "--out", "{d}/o5"], ["missing.csv"], "o5"),
    ("fit-empty", ["fit", "{d}/empty.csv", "--out", "{d}/o6"], ["empty.csv"], "o6"),
    ("fit-malformed", ["fit", "{d}/bad.csv", "--out", "{d}/o7"], ["bad.csv"], "o7"),
    ("fit-nan-loss", ["fit", "{d}/nan.csv", "--out", "{d}/o8"], ["nan"], "o8"),
    ("fit-zero-batch", ["fit", "{d}/zero_batch.csv", "--out", "{d}/o9"], ["batch"], "o9"),
    ("fit-unknown-law", ["fit", "{d}/good.csv", "--law", "nope", "--out", "{d}/o10"], ["nope"], "o10"),
    ("fit-target-below-floor", ["fit", "{d}/good.csv", "--targets", "0.5", "--out", "{d}/o11"], ["0.5"], "o11"),
    ("fit-unwritable", ["fit", "{d}/good.csv", "--out", "{d}/afile/x"], ["afile"], None),
    (
        "schedule-missing",
        ["schedule", "--from", "{d}/missing.json", "--horizon", "1e6", "--out", "{d}/o12"],
        ["missing.json"],
        "o12",
    ),
    (
        "schedule-empty",
        ["schedule", "--from", "{d}/empty.json", "--horizon", "1e6", "--out", "{d}/o13"],
        ["empty.json"],
        "o13",
    ),
    (
        "schedule-malformed",
        ["schedule", "--from", "{d}/bad.json", "--horizon", "1e6", "--out", "{d}/o14"],
        ["bad.json"],
        "o14",
    ),
    (
        "schedule-zero-horizon",
        ["schedule", "--curve", "1,0.5", "--horizon", "0", "--out", "{d}/o15"],
        ["horizon"],
        "o15",
    ),
    (
        "schedule-negative-batch",
        ["schedule", "--steps", "0:-5", "--horizon", "1e6", "--out", "{d}/o16"],
        ["batch"],
        "o16",
    ),
    (
        "schedule-unwritable",
        ["schedule", "--curve", "1,0.5", "--horizon", "1e6", "--out", "{d}/afile/x"],
        ["afile"],
        None,
    ),
    ("report-missing", ["report", "{d}/nowhere"], ["nowhere"], None),
    ("report-no-results", ["report", "{d}/noresults"], ["no results"], "noresults"),
    ("report-malformed", ["report", "{d}/badfit"], ["fit.json"], None),
    ("train-unknown-preset", ["train", "--preset", "huge", "--out", "{d}/o17"], ["huge"], "o17"),
    ("train-zero-batch", [*TRAIN, "--batch-size", "0", "--out", "{d}/o18"], ["batch_size"], "o18"),
    ("train-negative-batch", [*TRAIN, "--batch-size", "-256", "--out", "{d}/o19"], ["batch_size"], "o19"),
    ("train-config-missing", [*TRAIN, "--config", "{d}/missing.json", "--out", "{d}/o20"], ["missing.json"], "o20"),
    ("train-config-empty", [*TRAIN, "--config", "{d}/empty.json", "--out", "{d}/o21"], ["empty.json"], "o21"),
    ("train-config-malformed", [*TRAIN, "--config", "{d}/bad.json", "--out", "{d}/o22"], ["bad.json"], "o22"),
    ("train-schedule-malformed", [*TRAIN, "--batch-schedule", "{d}/bad.json", "--out", "{d}/o23"], ["bad.json"], "o23"),
    (
        "train-schedule-negative",
        [*TRAIN, "--batch-schedule", "{d}/sched_bad.json", "--out", "{d}/o24"],
        ["batch"],
        "o24",
    ),
    ("train-data-missing", [*TRAIN, "--data", "{d}/nodata", "--out", "{d}/o25"], ["nodata"], "o25"),
    ("train-unwritable", [*TRAIN, "--out", "{d}/afile/x"], ["afile"], None),
    ("validate-unknown", ["validate", "nope", "--out", "{d}/o26"], ["nope"], "o26"),
    ("validate-unknown-tier", ["validate", "sweep", "--tier", "huge", "--out", "{d}/o27"], ["huge"], "o27"),
    ("validate-zero-jobs", ["validate", "sweep", "--tier", "tiny", "--jobs", "0", "--out", "{d}/o28"], ["jobs"], "o28"),
    ("validate-unwritable", ["validate", "sweep", "--tier", "tiny", "--out", "{d}/afile/x"], ["afile"], None),
    ("demo-zero-jobs", ["demo", "--jobs", "0", "--out", "{d}/o29"], ["jobs"], "o29"),
    ("demo-unwritable", ["demo", "--out", "{d}/afile/x"], ["afile"], None),
    # -- added with the reliability work: each names the file, line, option or value at fault --
    ("fit-utf16", ["fit", "{d}/utf16.csv", "--out", "{d}/o30"], ["utf16.csv", "utf-8"], "o30"),
    ("fit-binary", ["fit", "{d}/binary.csv", "--out", "{d}/o31"], ["binary.csv"], "o31"),
    ("fit-non-numeric-cell", ["fit", "{d}/cell.csv", "--out", "{d}/o32"], ["cell.csv:3", "'loss'", "abc"], "o32"),
    ("fit-header-only", ["fit", "{d}/header_only.csv", "--out", "{d}/o33"], ["header_only.csv", "no data rows"], "o33"),
    (
        "fit-repeated-targets",
        ["fit", "{d}/good.csv", "--targets", "1.5,1.5,1.2", "--out", "{d}/o34"],
        ["repeated target", "1.5"],
        "o34",
    ),
    ("fit-empty-targets", ["fit", "{d}/good.csv", "--targets", "", "--out", "{d}/o35"], ["targets", "empty"], "o35"),
    (
        "fit-one-name-two-files",
        ["fit", "{d}/twin_a.csv", "{d}/twin_b.csv", "--out", "{d}/o36"],
        ["'x'", "twin_a.csv", "twin_b.csv"],
        "o36",
    ),
    ("fit-negative-bootstrap", ["fit", "{d}/good.csv", "--bootstrap", "-1", "--out", "{d}/o37"], ["bootstrap"], "o37"),
    (
        "simulate-eta-near-two",
        ["simulate", "--eta", "1.999999", "--out", "{d}/o38"],
        ["eta=1.999999", "--targets"],
        "o38",
    ),
    ("simulate-huge-d", ["simulate", "--d", "1000000000", "--out", "{d}/o39"], ["GiB", "--nbins"], "o39"),
    ("simulate-zero-d", ["simulate", "--d", "0", "--out", "{d}/o40"], ["--d"], "o40"),
    ("simulate-zero-nbins", ["simulate", "--nbins", "0", "--out", "{d}/o41"], ["nbins"], "o41"),
    ("simulate-empty-targets", ["simulate", "--targets", "", "--out", "{d}/o42"], ["targets", "empty"], "o42"),
    ("simulate-bad-grid", ["simulate", "--batch-sizes", "1:0:5", "--out", "{d}/o43"], ["1:0:5"], "o43"),
    (
        "schedule-infinite-horizon",
        ["schedule", "--curve", "1,0.5", "--horizon", "inf", "--out", "{d}/o44"],
        ["--horizon"],
        "o44",
    ),
    (
        "schedule-three-value-step",
        ["schedule", "--steps", "0:4e6:1", "--horizon", "1e6", "--out", "{d}/o45"],
        ["--steps", "0:4e6:1"],
        "o45",
    ),
    (
        "schedule-zero-interval",
        ["schedule", "--curve", "1,0.5", "--horizon", "1e6", "--interval", "0", "--out", "{d}/o46"],
        ["--interval"],
        "o46",
    ),
    (
        "schedule-zero-initial",
        ["schedule", "--curve", "1,0.5", "--horizon", "1e6", "--initial", "0", "--out", "{d}/o47"],
        ["--initial"],
        "o47",
    ),
    (
        "schedule-granularity-above-max",
        [
            "schedule",
            "--curve",
            "1,0.5",
            "--horizon",
            "1e6",
            "--granularity",
            "5000",
            "--max-batch",
            "100",
            "--out",
            "{d}/o48",
        ],
        ["granularity", "max-batch"],
        "o48",
    ),
    (
        "schedule-zero-devices",
        ["schedule", "--curve", "1,0.5", "--horizon", "1e6", "--devices", "0", "--out", "{d}/o49"],
        ["--devices"],
        "o49",
    ),
    (
        "schedule-zero-momentum",
        ["schedule", "--curve", "1,0.5", "--horizon", "1e6", "--momentum", "0", "--out", "{d}/o50"],
        ["--momentum"],
        "o50",
    ),
    (
        "schedule-from-out-of-range",
        ["schedule", "--from", "{d}/fit_small.json", "--horizon", "1e9", "--out", "{d}/o51"],
        ["--extrapolate"],
        "o51",
    ),
    (
        "train-batch-above-run",
        [*TRAIN, "--batch-size", "1e9", "--tokens", "20000", "--out", "{d}/o52"],
        ["batch_size", "exceeds"],
        "o52",
    ),
    ("train-device-tpu", [*TRAIN, "--device", "tpu", "--out", "{d}/o53"], ["tpu"], "o53"),
    (
        "train-schedule-huge-batch",
        [*TRAIN, "--batch-schedule", "{d}/sched_huge.json", "--out", "{d}/o54"],
        ["sched_huge.json", "exceeds"],
        "o54",
    ),
    (
        "train-schedule-nan-start",
        [*TRAIN, "--batch-schedule", "{d}/sched_nan.json", "--out", "{d}/o55"],
        ["sched_nan.json", "finite"],
        "o55",
    ),
    (
        "train-schedule-no-segments",
        [*TRAIN, "--batch-schedule", "{d}/sched_empty.json", "--out", "{d}/o56"],
        ["sched_empty.json", "segments"],
        "o56",
    ),
    (
        "train-schedule-samples-seq-schedule",
        [*TRAIN, "--batch-schedule", "{d}/sched_samples.json", "--seq-len-schedule", "1024:64", "--out", "{d}/o57"],
        ["sched_samples.json", "samples"],
        "o57",
    ),
    (
        "train-config-wrong-type",
        [*TRAIN, "--config", "{d}/cfg_type.json", "--out", "{d}/o58"],
        ["cfg_type.json", "'tokens'", "abc"],
        "o58",
    ),
    ("train-negative-seq-len", [*TRAIN, "--seq-len", "-5", "--out", "{d}/o59"], ["seq_len", "-5"], "o59"),
    ("train-unknown-lr-schedule", [*TRAIN, "--lr-schedule", "nope", "--out", "{d}/o60"], ["lr_schedule"], "o60"),
    (
        "validate-device-tpu",
        ["validate", "sweep", "--tier", "tiny", "--device", "tpu", "--out", "{d}/o61"],
        ["tpu"],
        "o61",
    ),
    ("plan-negative-budget", ["plan", "{d}/good.csv", "--budget", "-1", "--out", "{d}/o62"], ["--budget"], "o62"),
    ("plan-zero-n", ["plan", "{d}/good.csv", "--budget", "1e4", "--n", "0", "--out", "{d}/o63"], ["--n"], "o63"),
    (
        "plan-tol-above-one",
        ["plan", "{d}/good.csv", "--budget", "1e4", "--tol", "2", "--out", "{d}/o64"],
        ["--tol"],
        "o64",
    ),
    ("plan-missing-log", ["plan", "{d}/missing.csv", "--budget", "1e4", "--out", "{d}/o65"], ["missing.csv"], "o65"),
    ("plan-two-batches", ["plan", "{d}/two_batches.csv", "--budget", "1e4", "--out", "{d}/o66"], ["3 batch"], "o66"),
    ("simulate-plan-tol", ["simulate", "plan", "--tol", "0", "--out", "{d}/o67"], ["--tol"], "o67"),
    # -- readers that never guess; each names the file and line (or entry) at fault --
    (
        "fit-wandb-non-numeric-cell",
        ["fit", "{d}/wandb_cell.csv", "--batch-size", "a=8", "--out", "{d}/o68"],
        ["wandb_cell.csv:3", "column 2", "abc"],
        "o68",
    ),
    (
        "fit-wandb-empty-step",
        ["fit", "{d}/wandb_step.csv", "--batch-size", "a=8", "--out", "{d}/o69"],
        ["wandb_step.csv:3", "Step"],
        "o69",
    ),
    (
        "fit-negative-tokens",
        ["fit", "{d}/neg_tokens.csv", "--out", "{d}/o70"],
        ["neg_tokens.csv:2", "tokens -8"],
        "o70",
    ),
    ("fit-absurd-batch", ["fit", "{d}/absurd_batch.csv", "--out", "{d}/o71"], ["absurd_batch.csv", "7.6e+300"], "o71"),
    ("fit-huge-loss", ["fit", "{d}/huge_loss.csv", "--out", "{d}/o72"], ["huge_loss.csv", "1e+300"], "o72"),
    ("fit-bool-loss", ["fit", "{d}/bool_loss.jsonl", "--out", "{d}/o73"], ["bool_loss.jsonl:2", "True"], "o73"),
    (
        "fit-hf-falling-tokens",
        ["fit", "{d}/hf_dec", "--out", "{d}/o74"],
        ["trainer_state.json", "entry 2", "falls"],
        "o74",
    ),
    (
        "fit-batch-map-missing",
        ["fit", "{d}/good.csv", "--batch-size", "{d}/nomap.json", "--out", "{d}/o75"],
        ["nomap.json"],
        "o75",
    ),
    (
        "plan-format-mismatch",
        ["plan", "{d}/good.csv", "--format", "hf", "--budget", "1e4", "--out", "{d}/o76"],
        ["good.csv", "trainer_state"],
        "o76",
    ),
    # -- options that contradict, values no run can use, nothing left behind --
    (
        "train-resume-and-overwrite",
        [*TRAIN, "--resume", "--overwrite", "--out", "{d}/o77"],
        ["--resume", "--overwrite"],
        "o77",
    ),
    ("train-stop-at-negative", [*TRAIN, "--stop-at-tokens", "-1", "--out", "{d}/o78"], ["stop_at_tokens"], "o78"),
    ("train-eval-tokens-negative", [*TRAIN, "--eval-tokens", "-1", "--out", "{d}/o79"], ["eval_tokens", "-1"], "o79"),
    ("train-resume-into-new-folder", [*TRAIN, "--resume", "--out", "{d}/o80"], ["--resume", "o80"], "o80"),
    (
        "train-branch-from-missing",
        [*TRAIN, "--branch-from", "{d}/none/ckpt.pt", "--out", "{d}/o81"],
        ["--branch-from", "none"],
        "o81",
    ),
    (
        "validate-sbatch-unterminated",
        [
            "validate",
            "sweep",
            "--tier",
            "tiny",
            "--launcher",
            "submitit",
            "--sbatch",
            "'--qos=high",
            "--out",
            "{d}/o82",
        ],
        ["--sbatch", "quotation"],
        "o82",
    ),
    (
        "validate-time-limit-zero",
        ["validate", "sweep", "--tier", "tiny", "--time-limit", "0", "--out", "{d}/o83"],
        ["--time-limit"],
        "o83",
    ),
    (
        "plan-granularity-above-budget",
        ["plan", "{d}/good.csv", "--budget", "3000", "--granularity", "1e6", "--out", "{d}/o84"],
        ["granularity", "3000"],
        "o84",
    ),
    *[
        (
            f"validate-tier-{k}",
            ["validate", "sweep", "--tier-config", f"{{d}}/tier_{k}.toml", "--out", f"{{d}}/o85{k}"],
            [f"tier_{k}.toml", *words],
            f"o85{k}",
        )
        for k, words in [
            ("seeds", ["seeds", "'a'"]),
            ("extra", ["extra"]),
            ("eval", ["eval_tokens", "-1"]),
            ("interval", ["interval_frac", "5.0"]),
            ("escape", ["name", "elsewhere"]),
            ("preset", ["preset", "gpt5"]),
            ("device", ["tpu"]),
            ("wd", ["weight_decay", "-1"]),
            ("lr", ["lr", "inf"]),
            ("seq", ["seq_len", "32.5"]),
            ("baselist", ["base", "tiny"]),
            ("scalar", ["batches", "list"]),
            ("frac", ["batches", "100.5"]),
            ("long", ["batches", "seq_len=4096"]),
            ("twice", ["batches", "repeats"]),
        ]
    ],
    # -- found by a new user: contradictions and options that would be ignored or override others --
    (
        "train-branch-from-its-own-folder",
        [*TRAIN, "--overwrite", "--branch-from", "{d}/o86/ckpt.pt", "--out", "{d}/o86"],
        ["--branch-from", "replace"],
        None,
    ),
    (
        "train-stop-at-past-the-end",
        [*TRAIN, "--stop-at-tokens", "5000", "--out", "{d}/o87"],
        ["stop_at_tokens", "2048"],
        "o87",
    ),
    ("train-out-is-a-file", [*TRAIN, "--out", "{d}/afile"], ["afile", "is a file"], None),
    (
        "validate-sbatch-without-submitit",
        ["validate", "sweep", "--tier", "tiny", "--sbatch", "--qos=high", "--out", "{d}/o88"],
        ["--sbatch", "--launcher submitit"],
        "o88",
    ),
    (
        "validate-sbatch-sets-time",
        ["validate", "sweep", "--tier", "tiny", "--launcher", "submitit", "--sbatch", "--time=10", "--out", "{d}/o89"],
        ["--time=10", "--time-limit"],
        "o89",
    ),
    (
        "validate-tier-and-tier-config",
        ["validate", "sweep", "--tier", "nope", "--tier-config", "{d}/tier_seeds.toml", "--out", "{d}/o90"],
        ["--tier", "give one"],
        "o90",
    ),
    (
        "plan-fractional-granularity",
        ["plan", "{d}/good.csv", "--budget", "1e4", "--granularity", "100.5", "--out", "{d}/o91"],
        ["--granularity", "whole"],
        "o91",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(files, case):
    name, argv, words, out = case
    if argv[0] in ("train", "validate"):
        pytest.importorskip("torch")
    r = dbs([a.replace("{d}", str(files)) for a in argv])
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stderr[-1500:])
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-1500:]
    assert all(w.lower() in lines[0].lower() for w in words), lines[0]
    if out == "noresults":  # the input folder itself: nothing may be added to it
        assert not list((files / out).iterdir())
    elif out:
        assert not (files / out).exists(), f"refused, yet left behind: {sorted((files / out).rglob('*'))}"


def _train(out, *extra):
    return dbs([*TRAIN, "--out", str(out), *extra])


@pytest.mark.parametrize("kind", ["corrupted", "mismatched"])
def test_resume_from_a_bad_checkpoint(tmp_path, kind):
    pytest.importorskip("torch")
    out = tmp_path / kind
    r = _train(out)
    assert r.returncode == 0, r.stderr
    if kind == "corrupted":
        (out / "ckpt.pt").write_bytes(b"\x00garbage")
        extra = []
    else:
        extra = ["--lr", "0.01"]  # the checkpoint was written with lr 3e-3
    log_before = (out / "log.csv").read_text()
    r = _train(out, "--resume", *extra)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "checkpoint" in lines[0] and ("corrupted" in lines[0] or "different config" in lines[0])
    assert (out / "log.csv").read_text() == log_before  # nothing rewritten


def test_cuda_requested_without_cuda_is_one_line(files, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU visible, on a GPU machine too
    for argv in (
        [*TRAIN, "--device", "cuda", "--out", str(tmp_path / "a")],
        ["validate", "sweep", "--tier", "tiny", "--device", "cuda", "--out", str(tmp_path / "b")],
    ):
        r = subprocess.run(
            [sys.executable, "-m", "dbs_theory.cli", *argv], capture_output=True, text=True, timeout=300
        )  # a process of its own: CUDA reads CUDA_VISIBLE_DEVICES once, at start
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and "CUDA is not available" in lines[0], r.stderr[-1500:]
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_a_diverging_run_stops_with_one_line_naming_no_missing_checkpoint(tmp_path):
    pytest.importorskip("torch")
    r = dbs([*TRAIN, "--lr", "100", "--tokens", "20000", "--out", str(tmp_path / "lr")])
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 3 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-1500:]
    assert "no checkpoint was written" in lines[0] and "ckpt.pt" not in lines[0]
    assert r.stdout.strip() == ""


def test_a_bug_is_a_traceback_with_a_report_line_not_a_user_error(monkeypatch, capsys):
    from dbs_theory import cli
    from dbs_theory.commands import derive

    def broken(args):
        raise TypeError("unsupported operand type(s)")  # a programming error, not the user's

    monkeypatch.setattr(derive, "run", broken)
    rc = cli.main(["derive", "mccandlish"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" in err and "TypeError" in err and "please report" in err


@pytest.mark.parametrize(
    "modes, available, refused", [(10**6, 2 * 1600 * 10**6, False), (10**6, 1600 * 10**6, True), (10**9, None, False)]
)
def test_the_memory_check_at_its_boundary(modes, available, refused):
    """Refused above 80% of the available memory; with no reading (not Linux) nothing is refused."""
    from sim.modes import common as commands

    if available is None:
        import unittest.mock as mock

        with mock.patch.object(commands, "_available_memory", return_value=None):
            commands.check_memory(modes)  # nothing to compare with: no refusal
        return
    if refused:
        with pytest.raises(ValueError, match="GiB"):
            commands.check_memory(modes, available=available)
    else:
        commands.check_memory(modes, available=available)


def test_a_fit_folder_from_an_older_dbs_fit_is_one_line(tmp_path):
    """fit.json keyed its laws by str(target) and es_points.csv had no target_index before targets became
    row positions: the report refuses such a folder in one line instead of mismatching targets."""
    d = tmp_path / "oldfit"
    d.mkdir()
    (d / "fit.json").write_text(json.dumps({"rows": [{"target": 2.5}], "laws": {"2.5": {}}}))
    (d / "es_points.csv").write_text("run,batch_size,target,S,E\nr,2,2.5,10,20\n")
    r = subprocess.run([sys.executable, "-m", "dbs_theory.cli", "report", str(d)], capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "rerun dbs fit" in r.stderr


def test_a_refusal_is_one_line_even_after_warnings_on_the_way(tmp_path):
    """Unsorted rows (a warning) and then falling tokens (a refusal) printed three lines; the
    warnings held back while the command may still be refused are dropped with it, and shown when it runs."""
    rows = ["run,batch_size,step,tokens,loss", "r,8,2,16,2.9", "r,8,1,8,3.0", "r,8,3,4,2.8"]
    (tmp_path / "bad.csv").write_text("\n".join(rows) + "\n")
    r = dbs(["fit", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "o")])
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "tokens fall" in r.stderr, r.stderr
    good = ["run,batch_size,step,tokens,loss"] + [
        f"r{b},{b},{s},{s * b},{1 + 2 / b + 3 * 0.99**s:.6f}" for b in (2, 4, 8, 16) for s in range(1, 400)
    ]
    good[1], good[2] = good[2], good[1]  # one pair out of order: a warning, and the fit goes on
    (tmp_path / "ok.csv").write_text("\n".join(good) + "\n")
    r = dbs(["fit", str(tmp_path / "ok.csv"), "--bootstrap", "0", "--out", str(tmp_path / "o2")])
    assert r.returncode == 0 and "dbs: warning:" in r.stderr and "not sorted" in r.stderr, r.stderr

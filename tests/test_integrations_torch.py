"""Plain PyTorch on AccumulationPlan under DDP: docs/integrations.md's loop in 2 gloo processes (CPU) consumes
exactly the schedule's samples per optimizer step, split between the ranks without overlap, and ends with the
parameters of the same loop in one process."""

import json
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from test_integrations_docs import DOC, blocks  # noqa: E402

from dbs_theory.schedules.batch_schedules import step_batch  # noqa: E402

SECTION = "Plain PyTorch (also under DDP)"

WORKER = textwrap.dedent("""
    import json, sys
    import torch
    import torch.distributed as dist

    def worker(rank, code, out):
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=f"file://{out}/rendezvous", rank=rank, world_size=2)
        scope = {"__name__": "__docs__"}
        exec(compile(code, "docs/integrations.md: plain PyTorch", "exec"), scope)
        taken = [None, None]
        dist.all_gather_object(taken, scope["taken"])
        if rank == 0:
            params = {k: v.tolist() for k, v in scope["model"].state_dict().items()}
            json.dump(dict(taken=taken, params=params), open(f"{out}/result.json", "w"))
        dist.destroy_process_group()

    if __name__ == "__main__":
        worker(int(sys.argv[1]), open(sys.argv[2]).read(), sys.argv[3])
""")


def test_the_plain_loop_under_two_process_ddp_takes_the_schedules_samples(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    (code,) = blocks(DOC.read_text(encoding="utf-8"))[SECTION]
    (tmp_path / "block.py").write_text(code)
    (tmp_path / "worker.py").write_text(WORKER)
    ranks = [
        subprocess.Popen(
            [sys.executable, str(tmp_path / "worker.py"), str(rank), str(tmp_path / "block.py"), str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for rank in (0, 1)
    ]  # two processes started at once (torchrun's job), gloo over a file rendezvous
    for p in ranks:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
    got = json.loads((tmp_path / "result.json").read_text())

    # the schedule alone: each step takes the batch at the tokens consumed before it (32 tokens per sample)
    sched, T, total = step_batch([1024], [256, 512], unit="tokens"), 32, 3072
    assert f'step_batch({[1024]}, {[256, 512]}, unit="tokens")' in code and "total, micro, T = 3072, 2, 32" in code
    want, D = [], 0
    while D < total:
        want.append(int(sched(D)) // T)
        D += int(sched(D))
    a, b = got["taken"]
    assert len(a) == len(b) == len(want) == 8
    start = 0
    for k, n in enumerate(want):
        assert not set(a[k]) & set(b[k]) and len(a[k]) == len(b[k])  # the ranks split the step evenly
        assert sorted(a[k] + b[k]) == list(range(start, start + n)), f"step {k}"
        start += n

    monkeypatch.chdir(tmp_path)  # the same loop in one process: the same parameters (gloo all-reduce order)
    scope = {"__name__": "__docs__"}
    exec(compile(code, "docs/integrations.md: plain PyTorch", "exec"), scope)
    one = scope["model"].state_dict()
    assert max(float((one[k] - torch.tensor(v)).abs().max()) for k, v in got["params"].items()) < 1e-5

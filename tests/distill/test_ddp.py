"""Two-process DDP on the CPU (gloo) reproduces the one-process run with the same global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]

COMMON = [
    "+experiment=smoke",
    # SGD keeps update size proportional to the gradient; Adam's first steps are ~lr·sign(g) and
    # would turn harmless summation-order noise on near-zero gradients into ±lr differences.
    "optimizer=sgd",
    "trainer.max_steps=4",
    "trainer.limit_val_batches=0",
    "trainer.val_check_interval=4",
    "trainer.enable_progress_bar=false",
    "scheduler.warmup_steps=0",
    "data.shuffle=false",
    "data.teacher_samples.num_train=16",
    "data.teacher_samples.num_validation=4",
    "data.teacher_samples.length=128",
    "eval.max_batches=1",
    "callbacks.checkpoint.every_n_train_steps=4",
    "callbacks.throughput.warmup_steps=1",
]


def _run(out: Path, extra: list[str]) -> Path:
    env = dict(os.environ, PYTHONHASHSEED="0", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "distill", *COMMON, f"hydra.run.dir={out}", *extra]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out / "export"


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(tmp_path):
    single = _run(tmp_path / "single", ["data.batch_size=8"])
    ddp = _run(
        tmp_path / "ddp", ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true", "data.batch_size=4"]
    )
    a, b = load_file(str(single / "model.safetensors")), load_file(str(ddp / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        # fp32 all-reduce of per-rank token means equals the one-process mean up to summation order
        # (measured ~3e-8 after one SGD step at lr 0.1)
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")
    for run, world in ((single, 1), (ddp, 2)):
        metrics = json.loads((run.parent / "metrics.json").read_text())["metrics"]
        assert metrics["train/steps"] == 4
        # throughput counts the 3 steps after warm-up, with both ranks' tokens (8 windows of 64 per step)
        assert metrics["train/world_size"] == world and metrics["train/timed_steps"] == 3
        tokens = metrics["train/tokens_per_s"] * metrics["train/timed_seconds"]
        assert tokens == pytest.approx(3 * 8 * 64, rel=1e-6)
    # the final evaluation is pooled over both ranks' shards: the same windows and metrics as one process
    m1, m2 = (json.loads((run.parent / "metrics.json").read_text())["metrics"] for run in (single, ddp))
    assert m2["val/tokens"] == m1["val/tokens"] and m2["val/next_tokens"] == m1["val/next_tokens"]
    for key in ("val/kl", "val/top1", "val/nll_student"):
        assert m2[key] == pytest.approx(m1[key], rel=1e-4, abs=1e-6), key
    meta = json.loads((ddp / "config.json").read_text())
    assert meta["verification"]["verified"]
    assert not (tmp_path / "ddp" / "export" / ".staging").exists()
    # rank 1 must not have written a second run dir or export of its own
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "single"]

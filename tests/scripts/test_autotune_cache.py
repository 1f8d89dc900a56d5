"""gpu_autotune_cache.sh and gpu_env.sh: Triton's autotune results packed on one GPU machine, unpacked here, repacked
as a tracked file, and restored on the next machine from either copy."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "scripts" / "results").mkdir(parents=True)
    for name in ("gpu_autotune_cache.sh", "gpu_env.sh"):
        shutil.copy(ROOT / "scripts" / name, repo / "scripts" / name)
    return repo


def _bash(cmd: str, cwd: Path, **env: str) -> str:
    out = subprocess.run(["bash", "-c", cmd], cwd=cwd, env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), **env},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_save_load_and_restore_from_the_committed_copy(tmp_path):
    repo = _repo(tmp_path)
    cache = tmp_path / "triton-cache"
    for key, kernel in (("AAA", "chunk_fwd"), ("BBB", "step")):
        (cache / key).mkdir(parents=True)
        (cache / key / f"{kernel}.autotune.json").write_text(f'{{"kernel": "{kernel}"}}')
        (cache / key / f"{kernel}.cubin").write_bytes(b"\0compiled")  # compiled kernels stay behind
    out = tmp_path / "out"
    assert "2 results" in _bash(f"bash scripts/gpu_autotune_cache.sh save {out}", repo, TRITON_CACHE_DIR=str(cache))
    with tarfile.open(out / "autotune-cache.tgz") as t:
        assert sorted(Path(n).name for n in t.getnames()) == ["chunk_fwd.autotune.json", "step.autotune.json"]

    # here: unpacked into .autotune-cache/ and repacked as the tracked copy, the same bytes every time
    _bash(f"bash scripts/gpu_autotune_cache.sh load {out}/autotune-cache.tgz", repo)
    packed = repo / "scripts" / "results" / "autotune-cache.tgz"
    first = hashlib.sha256(packed.read_bytes()).hexdigest()
    _bash(f"bash scripts/gpu_autotune_cache.sh load {out}/autotune-cache.tgz", repo)
    assert hashlib.sha256(packed.read_bytes()).hexdigest() == first
    assert (repo / ".autotune-cache" / "AAA" / "chunk_fwd.autotune.json").exists()
    assert not list((repo / "scripts" / "results").glob(".*tmp"))

    # a fresh checkout (no .autotune-cache/): gpu_env.sh restores the committed copy into Triton's cache
    shutil.rmtree(repo / ".autotune-cache")
    fresh = tmp_path / "fresh-cache"
    _bash("source scripts/gpu_env.sh", repo, TRITON_CACHE_DIR=str(fresh))
    assert (fresh / "BBB" / "step.autotune.json").read_text() == '{"kernel": "step"}'


def test_unknown_command_is_refused(tmp_path):
    repo = _repo(tmp_path)
    out = subprocess.run(["bash", "scripts/gpu_autotune_cache.sh", "pack"], cwd=repo, capture_output=True, text=True)
    assert out.returncode == 2 and "unknown command 'pack'" in out.stderr


def test_pack_leaves_two_files_and_keeps_every_output(tmp_path):
    repo = _repo(tmp_path)
    shutil.copy(ROOT / "scripts" / "gpu_pack.sh", repo / "scripts" / "gpu_pack.sh")
    cache = tmp_path / "triton-cache"
    (cache / "AAA").mkdir(parents=True)
    (cache / "AAA" / "step.autotune.json").write_text("{}")
    out = tmp_path / "out"
    (out / "section_step").mkdir(parents=True)
    for name in [f"f{i}.md" for i in range(9)] + ["section_step/bench_kernels.md"]:
        (out / name).write_text(name)
    said = _bash(f"bash scripts/gpu_pack.sh {out}", repo, TRITON_CACHE_DIR=str(cache))
    assert "10 files" in said
    assert sorted(p.name for p in out.iterdir()) == ["autotune-cache.tgz", "results.tgz"]
    with tarfile.open(out / "results.tgz") as t:
        names = {n for n in t.getnames() if not t.getmember(n).isdir()}
        assert names == {f"f{i}.md" for i in range(9)} | {"section_step/bench_kernels.md"}
        assert t.extractfile("section_step/bench_kernels.md").read() == b"section_step/bench_kernels.md"
    with tarfile.open(out / "autotune-cache.tgz") as t:
        assert [Path(n).name for n in t.getnames() if n.endswith(".json")] == ["step.autotune.json"]


def test_pack_refuses_a_missing_folder(tmp_path):
    repo = _repo(tmp_path)
    shutil.copy(ROOT / "scripts" / "gpu_pack.sh", repo / "scripts" / "gpu_pack.sh")
    out = subprocess.run(["bash", "scripts/gpu_pack.sh", str(tmp_path / "none")], cwd=repo, capture_output=True, text=True)
    assert out.returncode == 2 and "is not a folder" in out.stderr

"""Export a trained student for miners, and refuse to publish one that does not stream correctly.

The student is written to a staging directory beside the target, reloaded from disk with torch +
safetensors alone, and checked: (a) the reloaded model's logits equal the in-memory model's, and
(b) prefill + step-by-step decoding equals the parallel forward. Only then is the staging
directory renamed into place, so a failed check leaves no export behind.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from eval.streaming import reload_parity, streaming_parity
from students.io import CONFIG, load_student, save_student


class ExportVerificationError(RuntimeError):
    """The exported student does not reproduce the trained one."""


def check_export_target(path: str | os.PathLike, overwrite: bool) -> Path:
    """Fail early (before training) if the export directory exists and may not be replaced."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"export.dir={str(path)!r} already exists; choose another export.dir or set export.overwrite=true")
    return path


def export_student(
    student,
    path: str | os.PathLike,
    sample_ids: torch.Tensor,
    extra: dict | None = None,
    overwrite: bool = False,
    verify: bool = True,
    atol: float = 1e-4,
) -> dict:
    """Write, reload, verify, then publish ``student`` at ``path``.

    Args:
        sample_ids: ``[B, T]`` held-out tokens used for the parity checks (fp32 on the CPU).
        extra: metadata stored in config.json (metrics, provenance).
        atol: largest allowed max-abs logit difference for both checks.
    Returns:
        The verification results (also stored in the export's config.json).
    Raises:
        ExportVerificationError if a check exceeds ``atol``; nothing is left at ``path`` then.
    """
    path = check_export_target(path, overwrite)
    staging = path.with_name(f".{path.name}.staging")
    if staging.exists():
        shutil.rmtree(staging)
    cpu_student = _cpu_fp32_copy(student)
    save_student(cpu_student, staging, extra=extra, overwrite=True)
    try:
        results: dict = {"verified": False}
        if verify:
            reloaded = load_student(staging, device="cpu")
            ids = sample_ids.cpu()
            results = {
                "verified": True,
                "atol": atol,
                "reload_max_abs": reload_parity(cpu_student, reloaded, ids)["max_abs"],
                "stream": streaming_parity(reloaded, ids),
            }
            failures = []
            if not results["reload_max_abs"] <= atol:
                failures.append(f"reloaded logits differ by {results['reload_max_abs']:.3g}")
            if not results["stream"]["max_abs"] <= atol:
                failures.append(f"prefill+step differs from the parallel forward by {results['stream']['max_abs']:.3g}")
            if failures:
                raise ExportVerificationError(f"export of {path} failed verification (atol {atol}): " + "; ".join(failures))
        meta = json.loads((staging / CONFIG).read_text())
        meta["verification"] = results
        (staging / CONFIG).write_text(json.dumps(meta, indent=1, default=str))
        if path.exists():
            shutil.rmtree(path)
        staging.rename(path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return results


def _cpu_fp32_copy(student):
    import copy

    return copy.deepcopy(student).to(device="cpu", dtype=torch.float32).eval()

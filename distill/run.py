"""``run(cfg)``: one distillation run, top to bottom. Returns the sweep metric.

seed → teacher (frozen, local weights) → student built from the teacher's geometry → init
(report saved) → data → eval at init → fit → eval → export → verify (a failed check fails the run).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from distill.callbacks import Throughput
from distill.data import TokenDataModule
from distill.distributed import plain_models
from distill.export import check_export_target, export_student
from distill.module import DistillModule
from distill.report import plot_training_curves
from eval.metrics import evaluate_distillation
from students import StudentLM, init_from_teacher, load_student, student_config_from_teacher

log = logging.getLogger("distill")

INIT_KINDS = ("teacher", "random", "export")


def build_student(cfg: DictConfig, teacher) -> StudentLM:
    """The student config is derived from the teacher's geometry plus ``cfg.student`` choices."""
    options = OmegaConf.to_container(cfg.student, resolve=True)
    student_cfg = student_config_from_teacher(
        teacher.geometry,
        token_layout=teacher.token_layout,
        teacher={"kind": teacher.kind, "source": teacher.source},
        **options,
    )
    return StudentLM(student_cfg)


def initialise(cfg: DictConfig, student: StudentLM, teacher, out_dir: Path) -> dict:
    kind = cfg.init.kind
    if kind not in INIT_KINDS:
        raise ValueError(f"unknown init.kind={kind!r}; choose one of {INIT_KINDS}")
    if kind == "teacher":
        report = init_from_teacher(student, teacher)
        report.save(out_dir / "init_report.json")
        uncovered = report.uncovered(student)
        if uncovered:
            raise RuntimeError(f"init map left student tensors unaccounted for: {uncovered}")
        log.info("init: %s (report: init_report.json)", report.summary())
        return report.to_dict()
    if kind == "export":
        # A previous stage's export (stage 1 → stage 2): same architecture, weights carried over.
        previous = load_student(cfg.init.path)
        skip = ("teacher", "token_layout", "impl")
        mine = {k: v for k, v in student.config.to_dict().items() if k not in skip}
        theirs = {k: v for k, v in previous.config.to_dict().items() if k not in skip}
        if mine != theirs:
            diff = sorted(k for k in mine if mine[k] != theirs.get(k))
            raise ValueError(f"init.path={cfg.init.path!r} holds a student that differs from this run's in {diff}")
        student.load_state_dict(previous.state_dict())
        log.info("init: weights from export %s", cfg.init.path)
        return {"kind": "export", "path": str(cfg.init.path)}
    log.info("init: random (no teacher weights)")
    return {"kind": "random"}


def make_datamodule(cfg: DictConfig, teacher, out_dir: Path) -> TokenDataModule:
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    samples = data_cfg.pop("teacher_samples", None)
    if samples:
        from distill.data import build_teacher_samples

        t0 = time.time()
        data_cfg["path"] = str(build_teacher_samples(teacher, out_dir / "teacher_samples", **samples))
        log.info(
            "data: sampled %d+%d sequences from the teacher in %.1fs", samples["num_train"], samples["num_validation"], time.time() - t0
        )
    dm = hydra.utils.instantiate(data_cfg)
    dm.setup()
    return dm


def evaluate(cfg: DictConfig, teacher, student, dm: TokenDataModule, device: torch.device) -> dict:
    """Held-out metrics. Once a process group is up (after fit under DDP/FSDP) each rank's loader holds
    its own shard; every rank evaluates ``ceil(eval.max_batches / world)`` batches of it and the
    token-weighted results are pooled, so all ranks return the metrics of the whole evaluated set."""
    teacher.to(device)
    student.to(device)
    world = torch.distributed.get_world_size() if torch.distributed.is_available() and torch.distributed.is_initialized() else 1
    max_batches = cfg.eval.max_batches
    if max_batches is not None and world > 1:
        max_batches = -(-max_batches // world)
    result = evaluate_distillation(teacher, student, dm.val_dataloader(), max_batches=max_batches, device=device)
    if world == 1:
        return result
    weights = {"kl": "tokens", "top1": "tokens", "nll_teacher": "next_tokens", "nll_student": "next_tokens"}
    sums = [result[k] * result[w] for k, w in weights.items()] + [result["tokens"], result["next_tokens"]]
    pooled = torch.tensor(sums, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(pooled)
    totals = dict(zip([*weights, "tokens", "next_tokens"], pooled.tolist(), strict=True))
    return {
        **{k: totals[k] / max(totals[w], 1) for k, w in weights.items()},
        "tokens": int(totals["tokens"]),
        "next_tokens": int(totals["next_tokens"]),
    }


def run(cfg: DictConfig) -> float:
    """Run one distillation job described by ``cfg``; returns ``metrics[cfg.optimized_metric]``."""
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    export_dir = check_export_target(cfg.export.dir, cfg.export.overwrite)
    L.seed_everything(cfg.seed, workers=True)

    teacher = hydra.utils.instantiate(cfg.teacher)
    log.info("teacher: %s, %s parameters", teacher.source, f"{sum(p.numel() for p in teacher.parameters()):,}")
    student = build_student(cfg, teacher)
    log.info("student: pattern %s, %s parameters", student.config.pattern, f"{student.num_parameters():,}")
    init_info = initialise(cfg, student, teacher, out_dir)

    dm = make_datamodule(cfg, teacher, out_dir)
    loss = hydra.utils.instantiate(cfg.loss)
    optimizer = hydra.utils.instantiate(cfg.optimizer)
    scheduler = hydra.utils.instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    module = DistillModule(teacher, student, loss, optimizer, scheduler, trainable=cfg.trainable)
    loggers = [hydra.utils.instantiate(c) for c in cfg.logger.values()] if cfg.get("logger") else []
    callbacks = [hydra.utils.instantiate(c) for c in cfg.callbacks.values()] if cfg.get("callbacks") else []
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    # Under DDP every rank evaluates on its own device (the strategy knows it before launch).
    device = trainer.strategy.root_device
    if device.type == "cuda":
        torch.cuda.set_device(device)  # rank k's kernels launch on its own GPU from the first eval on
    at_init = evaluate(cfg, teacher, student, dm, device)
    log.info("held-out at init: KL %.4f, top-1 %.3f", at_init["kl"], at_init["top1"])
    t0 = time.time()
    trainer.fit(module, datamodule=dm, ckpt_path=cfg.get("ckpt_path"))
    fit_seconds = time.time() - t0
    # FSDP leaves shards behind; evaluation and export need the whole student (and teacher).
    teacher, student = plain_models(
        trainer, teacher, student, lambda: hydra.utils.instantiate(cfg.teacher), lambda: build_student(cfg, teacher)
    )

    after = evaluate(cfg, teacher, student, dm, device)
    log.info(
        "held-out after %d steps: KL %.4f (init %.4f), top-1 %.3f (init %.3f)",
        trainer.global_step,
        after["kl"],
        at_init["kl"],
        after["top1"],
        at_init["top1"],
    )
    metrics = {f"val/{k}": v for k, v in after.items()}
    metrics.update({f"init/{k}": v for k, v in at_init.items()})
    metrics.update({"train/steps": trainer.global_step, "train/seconds": fit_seconds})
    for callback in trainer.callbacks:
        if isinstance(callback, Throughput) and callback.summary:
            metrics.update(callback.summary)
            log.info(
                "throughput: %.0f tokens/s over %d steps on %d device(s) (after %d warm-up steps)",
                callback.summary["train/tokens_per_s"],
                callback.summary["train/timed_steps"],
                callback.summary["train/world_size"],
                callback.warmup_steps,
            )

    sample = next(iter(dm.val_dataloader()))["input_ids"][:2]
    result = {"metrics": metrics}
    if cfg.export.enabled and trainer.is_global_zero:
        verification = export_student(
            student,
            export_dir,
            sample_ids=sample,
            extra={"metrics": metrics, "init": {"kind": cfg.init.kind, "copied": init_info.get("n_copied")}, "run": cfg.name},
            overwrite=cfg.export.overwrite,
            verify=cfg.export.verify,
            atol=cfg.export.parity_atol,
        )
        metrics["stream/parity_max_abs"] = verification.get("stream", {}).get("max_abs", float("nan"))
        metrics["export/reload_max_abs"] = verification.get("reload_max_abs", float("nan"))
        result["export"] = {"dir": str(export_dir), **verification}
        log.info(
            "export: %s (reload max abs %.2e, streaming max abs %.2e)",
            export_dir,
            metrics["export/reload_max_abs"],
            metrics["stream/parity_max_abs"],
        )

    if trainer.is_global_zero:
        (out_dir / "metrics.json").write_text(json.dumps(result, indent=1, default=float))
        plot_training_curves(out_dir, at_init, after, title=f"{cfg.name}: {' '.join(dict.fromkeys(student.config.pattern))} student")
    print(
        f"[distill] {cfg.name}: held-out KL {at_init['kl']:.4f} at init -> {after['kl']:.4f} after {trainer.global_step} steps "
        f"(top-1 {at_init['top1']:.3f} -> {after['top1']:.3f}); run dir {out_dir}"
    )
    if cfg.optimized_metric not in metrics:
        raise KeyError(f"optimized_metric={cfg.optimized_metric!r} not among {sorted(metrics)}")
    return float(metrics[cfg.optimized_metric])

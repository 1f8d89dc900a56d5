"""Helpers for multi-GPU strategies."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


def block_wrap_policy() -> set[type[nn.Module]]:
    """FSDP wrap units: the student's blocks and the teacher's decoder layers (whatever their class).

    Lightning's FSDPStrategy accepts a set of module classes as ``auto_wrap_policy``.
    """
    from students.model import Block

    classes: set[type[nn.Module]] = {Block}
    try:
        from transformers.models.llama.modeling_llama import LlamaDecoderLayer

        classes.add(LlamaDecoderLayer)
        from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer

        classes.add(Qwen2DecoderLayer)
        from transformers.models.mistral.modeling_mistral import MistralDecoderLayer

        classes.add(MistralDecoderLayer)
        from transformers.models.moshi.modeling_moshi import MoshiDecoderLayer

        classes.add(MoshiDecoderLayer)
    except ImportError:  # older transformers: wrap what we could import
        pass
    return classes


def plain_models(trainer, teacher, student, fresh_teacher: Callable[[], nn.Module], fresh_student: Callable[[], nn.Module]):
    """The fitted teacher and student as plain modules, on every rank, for evaluation and export.

    Under DDP (or one device) the modules the trainer fitted are plain already and come back as they
    are. Under FSDP their blocks hold shards that only the wrapped root can gather, so every rank
    gathers the full student state (a collective: all ranks must call this), loads it into a fresh
    student, and rebuilds the teacher from its config (frozen, so its weights are the ones it was
    built with). The full models must then fit one device, as they did for the evaluation at init.
    """
    from lightning.pytorch.strategies import FSDPStrategy

    if not isinstance(trainer.strategy, FSDPStrategy):
        return teacher, student
    from torch.distributed.fsdp import FullStateDictConfig, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    root = trainer.strategy.model
    with FSDP.state_dict_type(root, StateDictType.FULL_STATE_DICT, FullStateDictConfig(offload_to_cpu=True, rank0_only=False)):
        full = root.state_dict()
    prefix = "student."
    state = {k[len(prefix) :]: v for k, v in full.items() if k.startswith(prefix)}
    plain = fresh_student()
    missing, unexpected = plain.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"FSDP gather: student state does not match a fresh student (missing {missing}, unexpected {unexpected})")
    return fresh_teacher(), plain

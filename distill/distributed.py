"""Helpers for multi-GPU strategies."""

from __future__ import annotations

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

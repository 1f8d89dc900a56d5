"""distill's causal kernels: one folder per op, each with a plain-PyTorch ``naive`` reference.

Every op is reached through its package's dispatch function, which takes ``impl``:
``"naive"`` (the fp32 reference, any device), ``"triton"`` (the Triton kernels; CUDA, or CPU under
``TRITON_INTERPRET=1``) or ``"auto"`` (Triton on CUDA tensors, the reference elsewhere).
"""

from kernels._dispatch import IMPLS, resolve_impl

__all__ = ["IMPLS", "resolve_impl"]

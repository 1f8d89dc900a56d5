"""The chunk-local cumulative log-decay kernel (kernels/gla/triton_cumsum.py) against its reference."""

from __future__ import annotations

import pytest
import torch
from _kernel_util import Guards

from kernels.gla.naive import naive_chunk_local_cumsum
from kernels.gla.triton_cumsum import triton_chunk_local_cumsum


def _log_decay(B, T, H, K, dtype, device="cpu"):
    return torch.nn.functional.logsigmoid(torch.randn(B, T, H, K, device=device)).to(dtype)


@pytest.mark.parametrize("chunk_size", [16, 32, 64])
@pytest.mark.parametrize("B,T,H,K", [(2, 100, 3, 20), (1, 64, 2, 64), (1, 1, 1, 16), (2, 131, 1, 40)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_matches_reference_in_guard_bands(chunk_size, B, T, H, K, dtype):
    """Odd T (a partial last chunk, padded), odd K (a partial K block), several programs along time; every
    buffer inside NaN guard bands, the output NaN before the kernel writes it. Within 1e-6 of the reference, not
    bitwise: the scan adds in another order."""
    guards = Guards()
    g = guards(_log_decay(B, T, H, K, dtype))
    with guards.allocations():
        G = triton_chunk_local_cumsum(g, chunk_size)
    guards.check("chunk_local_cumsum")
    ref = naive_chunk_local_cumsum(g, chunk_size)
    assert G.dtype == torch.float32 and G.shape == ref.shape
    assert torch.isfinite(G).all()
    torch.testing.assert_close(G, ref, rtol=1e-6, atol=1e-5)
    # the padding repeats each last chunk's final sum (a padded step leaves the state as it was)
    if G.shape[1] > T:
        torch.testing.assert_close(G[:, T:], G[:, T - 1:T].expand_as(G[:, T:]), rtol=1e-6, atol=1e-5)


def test_non_contiguous_input():
    g = _log_decay(2, 40, 4, 16, torch.float32).transpose(1, 2).contiguous().transpose(1, 2)
    torch.testing.assert_close(triton_chunk_local_cumsum(g, 16), naive_chunk_local_cumsum(g, 16), rtol=1e-6, atol=1e-5)


def test_errors_name_the_argument():
    g = torch.zeros(2, 8, 16)
    with pytest.raises(ValueError, match=r"g \(2, 8, 16\) must be \[B, T, H, K\]"):
        triton_chunk_local_cumsum(g, 16)
    with pytest.raises(ValueError, match="chunk_size=24"):
        triton_chunk_local_cumsum(g[None], 24)


@pytest.mark.gpu
@pytest.mark.parametrize("K", [64, 128, 200])
def test_full_shape_gpu(K):
    g = _log_decay(4, 2047, 16, K, torch.float32, "cuda")
    for chunk_size in (16, 64):
        torch.testing.assert_close(triton_chunk_local_cumsum(g, chunk_size), naive_chunk_local_cumsum(g, chunk_size),
                                   rtol=1e-5, atol=1e-4)

"""Kernels launch on the GPU their inputs live on, whatever the current device (rank 1 of a DDP job
evaluates on cuda:1 before its trainer sets the device)."""

import pytest
import torch

from kernels.causal_conv1d import causal_conv1d
from kernels.ssd import chunk_ssd, ssd_step

needs_two = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")


@pytest.mark.gpu
@needs_two
def test_ops_run_on_second_gpu_while_first_is_current():
    torch.cuda.set_device(0)
    dev = torch.device("cuda", 1)
    x, w = torch.randn(2, 37, 64, device=dev), torch.randn(64, 4, device=dev)
    y, _ = causal_conv1d(x, w, activation="silu")
    y_ref, _ = causal_conv1d(x.cpu(), w.cpu(), activation="silu", impl="naive")
    torch.testing.assert_close(y.cpu(), y_ref, rtol=1e-5, atol=1e-5)

    B, T, H, K, V = 1, 70, 2, 16, 32
    q, k, v = (torch.randn(B, T, H, n, device=dev) for n in (K, K, V))
    g = -0.5 * torch.rand(B, T, H, device=dev)
    o, h = chunk_ssd(q, k, v, g, output_final_state=True)
    o_ref, h_ref = chunk_ssd(*(t.cpu() for t in (q, k, v, g)), output_final_state=True, impl="naive")
    torch.testing.assert_close(o.cpu(), o_ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(h.cpu(), h_ref, rtol=1e-4, atol=1e-4)

    state = h.clone()
    out = ssd_step(q[:, 0], k[:, 0], v[:, 0], g[:, 0], state)
    ref_state = h.cpu()
    ref = ssd_step(q[:, 0].cpu(), k[:, 0].cpu(), v[:, 0].cpu(), g[:, 0].cpu(), ref_state, impl="naive")
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(state.cpu(), ref_state, rtol=1e-4, atol=1e-4)
    assert torch.cuda.current_device() == 0

"""The host-side block and grid arithmetic (``kernels._dispatch.cdiv`` / ``next_power_of_2``) agrees with
Triton's own functions, which it replaces in the launch wrappers because those cost ~5 µs a call on the host."""

from __future__ import annotations

import triton

from kernels._dispatch import cdiv, next_power_of_2


def test_cdiv_and_next_power_of_2_match_triton():
    values = [*range(0, 300), 1023, 1024, 1025, 4095, 4096, 4097, 65535, 65536, 1 << 20, (1 << 31) - 1]
    for n in values:
        assert next_power_of_2(n) == triton.next_power_of_2(n), n
        for d in (1, 2, 3, 16, 64, 100, 128):
            assert cdiv(n, d) == triton.cdiv(n, d), (n, d)

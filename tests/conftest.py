"""Shared test set-up: the CPU kernels the stored outputs were computed with, and the
same global torch
state at the start of every test, whatever ran before it.

The chapters' stored outputs (and the toy models behind them) were computed with
PyTorch's AVX2 kernels. On a CPU with AVX-512, PyTorch, MKL and oneDNN pick wider
kernels that add in another order: the toy CLIP then trains to 90.5% instead of 90.3%,
and strict nbval fails. Capping the kernels at AVX2 here, before torch is imported, and
in the environment the notebook kernels inherit, gives the stored numbers on either kind
of machine (and costs nothing measurable on the toy training). The Makefile sets the
same.

Tests that pin the thread count (for reproducible sums) or change other process-wide
torch settings would otherwise leak them into every later test, so that speed and
results depend on test order.
"""

import os

CPU_KERNELS = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}
for _name, _value in CPU_KERNELS.items():
    os.environ.setdefault(_name, _value)

import pytest
import torch

_THREADS = torch.get_num_threads()


@pytest.fixture(autouse=True)
def restore_torch_state():
    dtype = torch.get_default_dtype()
    grad = torch.is_grad_enabled()
    deterministic = torch.are_deterministic_algorithms_enabled()
    rng = torch.get_rng_state()
    yield
    torch.set_num_threads(_THREADS)
    torch.set_default_dtype(dtype)
    torch.set_grad_enabled(grad)
    # the call itself is slow
    if torch.are_deterministic_algorithms_enabled() != deterministic:
        torch.use_deterministic_algorithms(deterministic)
    torch.set_rng_state(rng)

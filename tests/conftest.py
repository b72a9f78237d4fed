"""Shared test set-up: every test starts from the same global torch state, whatever ran before it.

Tests that pin the thread count (for reproducible sums) or change other process-wide torch settings
would otherwise leak them into every later test, so that speed and results depend on test order.
"""

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
    if torch.are_deterministic_algorithms_enabled() != deterministic:  # the call itself is slow
        torch.use_deterministic_algorithms(deterministic)
    torch.set_rng_state(rng)

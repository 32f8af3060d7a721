"""Shared by the dmue_core tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The test machines have 2 shared cores: one thread avoids OpenMP oversubscription."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

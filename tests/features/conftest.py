"""Feature-stage tests share 2 CPU cores with other jobs: one intra-op thread (deterministic too)."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def single_intra_op_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

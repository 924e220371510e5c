"""Training tests run on shared CPU cores: one intra-op thread is faster and deterministic."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def single_intra_op_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

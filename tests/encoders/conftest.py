"""The encoder tests run on 2 CPU cores shared with other jobs: one intra-op thread is faster there
and deterministic (as in tests/model/conftest.py)."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def single_intra_op_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

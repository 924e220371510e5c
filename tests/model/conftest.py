"""The model tests run on 2 CPU cores shared with other jobs: with several intra-op threads each
small op waits on the others (16 ms instead of 0.1 ms). One thread is faster and deterministic."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def single_intra_op_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

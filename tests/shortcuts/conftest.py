"""The shortcut tests train with one torch thread (as the suite); give the thread count back after each
test, so tests that run later in the same process (e.g. tests/sweep comparing an in-process run with a
subprocess one) compute with torch's default."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)

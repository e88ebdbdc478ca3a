import pytest
import torch

from qwenvl import QwenVLModel, QwenVLProcessor
from qwenvl.models import ResamplerConfig


def pytest_collection_modifyitems(config, items):
    """GPU tests are skipped, visibly, where no CUDA device exists."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def model():
    """A tiny random model (16 queries) in eval mode; a module may define its own."""
    torch.manual_seed(0)
    return QwenVLModel.from_config(adapter=ResamplerConfig(num_queries=16)).eval()


@pytest.fixture(scope="module")
def proc(model):
    return QwenVLProcessor.from_model(model)

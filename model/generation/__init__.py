"""Generation from a trained AudioGen-Omni checkpoint (see model/generate.py for the API)."""
from model.generation.errors import GenerationError
from model.generation.generator import SAMPLE_RATE, GenerationResult, Generator
from model.generation.request import GenerationRequest, PreparedInputs, prepare_inputs

__all__ = [
           "SAMPLE_RATE",
           "GenerationError",
           "GenerationRequest",
           "GenerationResult",
           "Generator",
           "PreparedInputs",
           "prepare_inputs",
]

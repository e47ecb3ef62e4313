"""What learns and generates: generative model families, free of Flower and Opacus."""

from genai_models.data_spec import DATASETS, DIGITS, DataSpec, resolve
from genai_models.registry import MODELS, build_model

__all__ = ["DATASETS", "DIGITS", "MODELS", "DataSpec", "build_model", "resolve"]

"""What learns and generates: generative model families, free of Flower and Opacus."""

from genai_models.data_spec import BUILTIN_SPECS, DataSpec
from genai_models.registry import MODELS, build_model

__all__ = ["BUILTIN_SPECS", "MODELS", "DataSpec", "build_model"]

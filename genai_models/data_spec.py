"""Public metadata about a dataset: what a model needs to know without seeing a record."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataSpec:
    """Shape, label set and value range of a dataset, all public (invariant P5).

    Images are stored flattened; ``value_max`` is the documented upper bound of a
    pixel (for example 16 for scikit-learn's digits), never a statistic of the data.
    """

    name: str
    kind: str
    image_shape: tuple[int, int]
    num_classes: int
    value_max: float

    @property
    def num_features(self) -> int:
        """Number of input features (pixels) per record."""
        return self.image_shape[0] * self.image_shape[1]


BUILTIN_SPECS: dict[str, DataSpec] = {
    # scikit-learn documents digits as 8x8 images of integers in 0..16.
    "digits": DataSpec(
        name="digits", kind="image", image_shape=(8, 8), num_classes=10, value_max=16.0
    ),
}

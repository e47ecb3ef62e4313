"""Class labels that condition a model's samples."""

from __future__ import annotations

import torch


def sample_labels(n: int, num_classes: int, labels: torch.Tensor | None) -> torch.Tensor:
    """``labels`` checked against ``n``, or balanced classes when none are given."""
    if labels is None:
        return torch.arange(n) % num_classes
    if len(labels) != n:
        raise ValueError(f"sample: got {len(labels)} labels for n={n} records")
    return labels.long()

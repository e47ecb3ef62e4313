"""Release synthetic data from the global model: post-processing, so it costs no privacy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from genai_models import DataSpec
from genai_models.table_codec import TableCodec
from privacy.atomic import write_with


def release_images(
    model: nn.Module, spec: DataSpec, n: int, seed: int, out_dir: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``n`` labelled images (balanced classes) into ``synthetic.npz`` and ``samples.png``.

    ``x`` is in the dataset's own pixel scale (0..value_max), ``y`` the labels.
    """
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    x01, y = model.sample(n, torch.arange(n) % spec.num_classes, generator=gen)
    x = (x01.numpy() * spec.value_max).astype(np.float32)
    y = y.numpy().astype(np.int64)
    write_with(out_dir / "synthetic.npz", lambda handle: np.savez_compressed(handle, x=x, y=y))
    _sample_grid(x, y, spec, out_dir / "samples.png")
    return x, y


def release_table(
    model: nn.Module, codec: TableCodec, n: int, seed: int, out_dir: Path
) -> pd.DataFrame:
    """Sample ``n`` rows (classes of the target balanced) into ``synthetic.csv``.

    The rows have the schema's columns, order, dtypes and categories; balanced
    classes are a public choice (the real class shares would be a private statistic).
    """
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    classes = len(codec.schema.classes)
    x01, y = model.sample(n, torch.arange(n) % classes, generator=gen)
    frame = codec.decode(x01.numpy(), y.numpy())
    write_with(out_dir / "synthetic.csv",
               lambda handle: handle.write(frame.to_csv(index=False).encode("utf-8")))
    return frame


def _sample_grid(x: np.ndarray, y: np.ndarray, spec: DataSpec, path: Path, per_class: int = 10):
    """One row per class, ``per_class`` samples in each row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = spec.num_classes
    fig, axes = plt.subplots(rows, per_class, figsize=(per_class * 0.6, rows * 0.6))
    for label in range(rows):
        picks = np.flatnonzero(y == label)[:per_class]
        for col in range(per_class):
            ax = axes[label, col]
            ax.axis("off")
            if col < len(picks):
                img = x[picks[col]].reshape(spec.image_shape)
                ax.imshow(img, cmap="gray_r", vmin=0, vmax=spec.value_max)
        axes[label, 0].set_title(str(label), fontsize=6, loc="left", pad=1)
    fig.suptitle("synthetic samples, one row per class", fontsize=8)
    fig.tight_layout()
    write_with(path, lambda handle: fig.savefig(handle, format="png", dpi=100))
    plt.close(fig)

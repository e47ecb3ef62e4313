"""Release synthetic data from the global model: post-processing, so it costs no privacy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from genai_models import DataSpec
from genai_models.table_codec import TableCodec
from genai_models.training_by_sampling import Conditions
from privacy.atomic import write_with


def class_shares(entries: list[dict], num_classes: int) -> dict | None:
    """The class shares the owners' noisy counts give, from the run's ledger; None if none.

    Each owner's counts are its signed, DP-noised release (at most one per run, checked
    by the reply judge). Each becomes a share vector (counts clipped at zero, divided by
    their sum), and the vectors are averaged weighted by each owner's noisy total capped
    at the (lower) median owner's: the pooled shares when owners are alike in size, and no
    owner, however large the counts it claims, weighs more than a typical one. All of
    it is post-processing; the audit recomputes the same shares from the ledger.
    """
    vectors, totals, owners = [], [], []
    for line in entries:
        event = line.get("owner_entry") or {}
        counts = np.clip(np.asarray(event.get("class_counts", []), dtype=float), 0, None)
        if line.get("verdict") != "accepted" or len(counts) != num_classes \
                or event["client_id"] in owners or counts.sum() <= 0:
            continue
        owners.append(event["client_id"])
        totals.append(counts.sum())
        vectors.append(counts / counts.sum())
    if not owners:
        return None
    weights = np.minimum(totals, lower_median(totals))
    shares = (np.asarray(vectors) * weights[:, None]).sum(axis=0) / weights.sum()
    return {"shares": [round(float(v), 6) for v in shares], "owners": sorted(owners)}


def lower_median(values: list[float]) -> float:
    """The lower median of ``values``: with two owners, the smaller total.

    Their mean would let a liar's huge total pull the cap up to half of it.
    """
    return float(np.sort(np.asarray(values, dtype=float))[(len(values) - 1) // 2])


def condition_counts(entries: list[dict], conditions: Conditions) -> dict | None:
    """The federation's category counts for the GAN's training-by-sampling; None if none.

    From the run's ledger, one accepted release per owner (as ``class_shares``): in each
    column, the owners' noisy counts summed, each owner's scaled down to at most the
    (lower) median owner's total in that column (no owner, whatever it claims, outweighs a
    typical one). Each column's sum is then projected onto the non-negative vectors of
    its own total, which zeroes the categories the noise alone made (clipping at zero
    would hand every empty category a share of the noise). Post-processing; the audit
    recomputes it.
    """
    owners, vectors = [], []
    for line in entries:
        event = line.get("owner_entry") or {}
        cats = event.get("category_counts")
        if line.get("verdict") != "accepted" or not isinstance(cats, list) \
                or len(cats) != conditions.width or event["client_id"] in owners:
            continue
        owners.append(event["client_id"])
        vectors.append(np.asarray(cats, dtype=float))
    if not owners or not conditions.blocks:
        return None
    out, pos = [], 0
    for _, width in conditions.blocks:
        blocks = [v[pos:pos + width] for v in vectors]
        totals = [max(float(b.sum()), 1.0) for b in blocks]
        cap = lower_median(totals)
        summed = sum(b * min(1.0, cap / t) for b, t in zip(blocks, totals, strict=True))
        out += list(_simplex(summed, max(float(summed.sum()), 1.0)))
        pos += width
    return {"counts": [round(float(c), 3) for c in out], "owners": sorted(owners)}


def _simplex(v: np.ndarray, total: float) -> np.ndarray:
    """The Euclidean projection of ``v`` onto {w ≥ 0, Σw = total} (Duchi et al., 2008)."""
    u = np.sort(v)[::-1]
    excess = np.cumsum(u) - total
    k = np.arange(1, len(v) + 1)
    rho = k[u - excess / k > 0][-1]
    return np.maximum(v - excess[rho - 1] / rho, 0.0)


def release_labels(n: int, num_classes: int, shares: list[float] | None) -> torch.Tensor:
    """``n`` labels in the given shares (largest remainders), every class at least once.

    Without shares the classes are balanced, a public choice.
    """
    if shares is None:
        return torch.arange(n) % num_classes
    exact = np.asarray(shares) * n
    counts = np.floor(exact).astype(int)
    counts[np.argsort(counts - exact)[: n - counts.sum()]] += 1
    if n >= num_classes:  # a class the noise zeroed still appears (TSTR needs them all)
        while (counts == 0).any():
            counts[counts.argmax()] -= 1
            counts[np.flatnonzero(counts == 0)[0]] += 1
    return torch.repeat_interleave(torch.arange(num_classes), torch.as_tensor(counts))


def release_images(
    model: nn.Module, spec: DataSpec, n: int, seed: int, out_dir: Path,
    shares: list[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``n`` labelled images into ``synthetic.npz`` and ``samples.png``.

    Classes follow ``shares`` (the owners' noisy counts) or are balanced. ``x`` is in
    the dataset's own pixel scale (0..value_max), ``y`` the labels.
    """
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    x01, y = model.sample(n, release_labels(n, spec.num_classes, shares), generator=gen)
    x = (x01.numpy() * spec.value_max).astype(np.float32)
    y = y.numpy().astype(np.int64)
    write_with(out_dir / "synthetic.npz", lambda handle: np.savez_compressed(handle, x=x, y=y))
    _sample_grid(x, y, spec, out_dir / "samples.png")
    return x, y


def release_table(
    model: nn.Module, codec: TableCodec, n: int, seed: int, out_dir: Path,
    shares: list[float] | None = None,
) -> pd.DataFrame:
    """Sample ``n`` rows into ``synthetic.csv``, the target's classes in ``shares``.

    The rows have the schema's columns, order, dtypes and categories; without shares
    the classes are balanced (a public choice).
    """
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    classes = len(codec.schema.classes)
    x01, y = model.sample(n, release_labels(n, classes, shares), generator=gen)
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

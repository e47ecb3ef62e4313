"""CTGAN's training-by-sampling, as far as DP-SGD allows it.

Each fake is conditioned on one category of one categorical column: the column
chosen uniformly, the category drawn from that column's frequencies. The generator
sees the condition as a one-hot over every categorical column's categories and pays
a cross-entropy when its draw in that column differs (Xu et al., 2019), so each
categorical column of the fakes, and of the release, follows the frequencies.

The frequencies are the owners' DP-noised category counts (released once per run
and charged with their class counts), so using them is post-processing. CTGAN also
picks the *real* rows by the condition; DP-SGD's accountant needs the real batch to
be a Poisson sample of all records, so here the discriminator sees real records as
they come, and fakes whose conditions follow the same frequencies. Without
frequencies (before the first release, under ``--balance`` or owner-level DP, or when
the counts would cost the training too much) there is no condition: the all-zero vector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class Conditions:
    """The conditioned columns: (start, width) of each one-hot block in an encoded record."""

    blocks: tuple[tuple[int, int], ...] = ()

    @property
    def width(self) -> int:
        """Length of a condition vector: every conditioned column's categories."""
        return sum(width for _, width in self.blocks)

    def frequencies(self, values) -> torch.Tensor:
        """``values`` checked and normalised within each column; ValueError names what is wrong.

        They come from a peer (the coordinator's aggregate of the owners' noisy counts):
        one non-negative finite number per category, and a positive sum per column.
        """
        values = list(values) if isinstance(values, (list, tuple)) else None
        if values is None or any(isinstance(v, bool) or not isinstance(v, (int, float))
                                 for v in values):
            raise ValueError("condition frequencies are not a list of numbers")
        freqs = torch.as_tensor(values, dtype=torch.float64)
        if len(freqs) != self.width:
            raise ValueError(f"{len(freqs)} condition frequencies for {self.width} categories")
        if not bool(torch.isfinite(freqs).all()) or bool((freqs < 0).any()):
            raise ValueError("condition frequencies must be finite and non-negative")
        out, pos = [], 0
        for _, width in self.blocks:
            block = freqs[pos:pos + width]
            if not block.max() > 0:
                raise ValueError("a conditioned column's frequencies sum to zero")
            block = (block / block.max()).float()  # no overflow to an infinite sum
            out.append(block / block.sum())
            if not out[-1].max() > 0:  # a peak of 1 survives float32: only a guard
                raise ValueError("a conditioned column's frequencies cannot be normalised")
            pos += width
        return torch.cat(out) if out else freqs.float()

    def draw(self, n: int, frequencies: torch.Tensor | None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` condition vectors: a uniform column, a category by its frequency.

        All zero (no condition) without frequencies or conditioned columns.
        """
        cond = torch.zeros(n, self.width)
        if frequencies is None or not self.blocks or n == 0:
            return cond
        column = torch.randint(len(self.blocks), (n,), generator=generator)
        pos = 0
        for b, (_, width) in enumerate(self.blocks):
            rows = torch.nonzero(column == b).squeeze(1)
            if len(rows):
                pick = torch.multinomial(frequencies[pos:pos + width], len(rows),
                                         replacement=True, generator=generator)
                cond[rows, pos + pick] = 1.0
            pos += width
        return cond

    def loss(self, logits: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """CTGAN's generator penalty, averaged over all fakes.

        The cross-entropy of each conditioned column's logits against the category
        of the fake's condition (fakes without a condition pay nothing).
        """
        total, pos = logits.new_zeros(()), 0
        for start, width in self.blocks:
            block = cond[:, pos:pos + width]
            rows = block.sum(1) > 0
            if bool(rows.any()):
                total = total + F.cross_entropy(logits[rows, start:start + width],
                                                block[rows].argmax(1), reduction="sum")
            pos += width
        return total / max(len(logits), 1)

    @property
    def count_blocks(self) -> int:
        """How many counts one record moves by one in an owner's counts release.

        Its class, and its category in each conditioned column: the release's L2
        sensitivity is the square root of this.
        """
        return 1 + len(self.blocks)

    def counts_std(self, noise_multiplier: float) -> float:
        """The Gaussian std on each count for ``noise_multiplier`` at that sensitivity."""
        return noise_multiplier * math.sqrt(self.count_blocks)

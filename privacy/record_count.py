"""P6 decided on a DP record count: an owner's answer says nothing exact about its size.

Whether an owner's max-delta is below 1/(its record count) changes when one record is
added at the threshold, so answering it exactly is an uncharged release about the data.
Each owner decides instead on its count plus Gaussian noise of std
``RECORD_COUNT_NOISE`` (sensitivity 1), with ``MARGIN_SIGMAS`` standard deviations of
margin on the refusing side, and charges that one Gaussian release with its first
DP-SGD spend (the ledger line says ``record_count_noise``).

The noise comes from a keyed hash of the owner's secret key and its records: asked
again about the same records, the owner gives the same answer (a coordinator cannot
average fresh draws, even by making a request fail before it is written down), and
without the key nobody can predict it (P9).
"""

from __future__ import annotations

import hashlib
import hmac
from statistics import NormalDist

RECORD_COUNT_NOISE = 100.0
"""Std (in records) of the noise on the count P6 is decided on: it costs ε well under
0.01 at the orders DP-SGD budgets use, and shifts the threshold by hundreds of
records, far from the tens of thousands a usual max-delta of 1e-5 allows."""
MARGIN_SIGMAS = 4.0
"""How many standard deviations above the noisy count the check adds before comparing
(a true count above the threshold passes with probability about 3e-5)."""


def noisy_record_count(count: int, secret: bytes, records: bytes) -> int:
    """``count`` plus Gaussian noise drawn from HMAC-SHA256(secret, records), rounded.

    ``records``: a digest of the owner's records, so that other records get fresh noise.
    Rounding to a whole count leaves no low bits of the floating-point sum to read.
    """
    mac = hmac.new(secret, b"fedsynth record count\0" + records, hashlib.sha256).digest()
    uniform = ((int.from_bytes(mac[:8], "big") >> 11) + 0.5) / 2**53  # in (0, 1)
    return round(count + RECORD_COUNT_NOISE * NormalDist().inv_cdf(uniform))


def delta_fits(max_delta: float, noisy_count: int) -> bool:
    """P6 on the noisy count: ``max_delta`` below 1/(count + the margin)."""
    return max_delta * (max(noisy_count, 1) + MARGIN_SIGMAS * RECORD_COUNT_NOISE) < 1.0


def record_count_step() -> tuple[float, float, int]:
    """The release in an accountant's history: one Gaussian step at sample rate 1."""
    return (RECORD_COUNT_NOISE, 1.0, 1)

"""SecAgg+'s masks from the whole key: SHAKE-256 in place of Flower's 32-bit generator.

Flower 1.42's ``pseudo_rand_gen`` folds each mask seed (a 256-bit ECDH key, a self-mask
seed) into 32 bits by XOR and feeds numpy's Mersenne Twister with it (flwrlabs/flower
issue #7522; the fix, PR #7570, is not released). The first coordinate of every masked
vector is Flower's public weight factor, so a coordinator that has unmasked a round
knows the first mask value of each pair and can search the 2^32 seeds: with two
honest owners in a sum it recovers one owner's share alone (measured: seed found, share
recovered exactly, in 2^32 guesses), and that share carries a fraction of the noise.

Here each mask is the SHAKE-256 stream of the whole seed (hashlib's, a standard
extendable-output function), eight bytes per value reduced modulo the range (bias
below range / 2^64). Both Flower modules that draw masks (the owner's mod and the
coordinator's workflow) take this generator at import of fedsynth's secure-sum code;
both sides must, or the unmasked sum is garbage, which fails closed (the released
step is bounded and the audit sees it). An owner's own masks are what protect it: its
process installs this before its first SecAgg+ stage and refuses to take part if
Flower's modules no longer hold the name it replaces.
"""

from __future__ import annotations

import hashlib
import importlib

import numpy as np

DOMAIN = b"fedsynth-secagg-mask-v1|"
"""Prefix of every SHAKE-256 input: masks of this scheme, and of no other use of a key."""

_FLOWER_USERS = (
    "flwr.client.mod.secure_aggregation.secaggplus_mod",
    "flwr.server.workflow.secure_aggregation.secaggplus_workflow",
)


def mask_stream(seed: bytes, num_range: int,
                dimensions_list: list[tuple[int, ...]]) -> list[np.ndarray]:
    """Flower's ``pseudo_rand_gen`` contract: arrays of the given shapes in [0, num_range).

    Deterministic in ``seed`` (both ends of a pair derive the same mask) and unpredictable
    without all of it.
    """
    if not isinstance(seed, bytes) or len(seed) < 16:
        raise ValueError("a SecAgg+ mask seed must be at least 16 bytes")
    if not 2 <= num_range <= 2**63:
        raise ValueError(f"mask range {num_range} outside 2..2^63")
    sizes = [int(np.prod(d)) if len(d) else 1 for d in dimensions_list]
    raw = hashlib.shake_256(DOMAIN + seed).digest(8 * sum(sizes))
    values = (np.frombuffer(raw, dtype="<u8") % np.uint64(num_range)).astype(np.int64)
    out, start = [], 0
    for dims, size in zip(dimensions_list, sizes, strict=True):
        chunk = values[start:start + size]
        out.append(chunk.reshape(dims) if len(dims) else np.array(chunk[0], dtype=np.int64))
        start += size
    return out


def install() -> None:
    """Make Flower's SecAgg+ mod and workflow draw their masks from :func:`mask_stream`.

    Raises ImportError if a module no longer holds ``pseudo_rand_gen`` (a Flower
    upgrade moved it): better no secure sum than one with masks nobody checked.
    """
    for name in _FLOWER_USERS:
        module = importlib.import_module(name)
        if not hasattr(module, "pseudo_rand_gen"):
            raise ImportError(f"{name} has no pseudo_rand_gen to replace; check this Flower "
                              "version's SecAgg+ mask generator before using it")
        module.pseudo_rand_gen = mask_stream


def installed() -> bool:
    """Whether every Flower module that draws masks draws them from :func:`mask_stream`."""
    return all(getattr(importlib.import_module(name), "pseudo_rand_gen", None) is mask_stream
               for name in _FLOWER_USERS)

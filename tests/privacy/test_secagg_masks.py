"""SecAgg+'s masks come from the whole key, on the owner's side and the coordinator's."""

import importlib

import numpy as np
import pytest
from flwr.common.secure_aggregation.secaggplus_utils import pseudo_rand_gen as flower_masks

from privacy.secagg_masks import installed, mask_stream


def _same_fold(seed: bytes) -> bytes:
    """Another seed that Flower's generator folds to the same 32 bits (two words flipped alike)."""
    flip = bytes([0xA5, 0x5A, 0xFF, 0x01])
    words = bytearray(seed)
    for w in (0, 4):
        words[w:w + 4] = bytes(a ^ b for a, b in zip(words[w:w + 4], flip, strict=True))
    return bytes(words)


def test_every_flower_module_that_draws_masks_draws_them_from_the_full_key():
    importlib.import_module("client.secure_share")  # the owner's side installs it
    importlib.import_module("server.secure_round")  # the coordinator's too
    assert installed()


def test_seeds_that_flowers_generator_confuses_give_unrelated_masks():
    seed = bytes(range(32))
    other = _same_fold(seed)
    dims = [(), (5, 7)]
    # Flower 1.42's own generator: the two keys give the same masks (32 bits of the 256).
    assert all(np.array_equal(a, b) for a, b in zip(flower_masks(seed, 2**32, dims),
                                                    flower_masks(other, 2**32, dims),
                                                    strict=True))
    mine, theirs = mask_stream(seed, 2**32, dims), mask_stream(other, 2**32, dims)
    assert not np.array_equal(mine[1], theirs[1]) and mine[0] != theirs[0]


def test_masks_are_deterministic_in_range_and_shaped_as_asked():
    seed = bytes(range(100, 132))
    first = mask_stream(seed, 2**32, [(), (3,), (40, 50)])
    again = mask_stream(seed, 2**32, [(), (3,), (40, 50)])
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert first[0].shape == () and first[1].shape == (3,) and first[2].shape == (40, 50)
    values = np.concatenate([a.ravel() for a in first])
    assert values.dtype == np.int64 and values.min() >= 0 and values.max() < 2**32
    assert 0.45 < values.mean() / 2**32 < 0.55  # 2,004 draws spread over the range
    with pytest.raises(ValueError, match="16 bytes"):
        mask_stream(b"short", 2**32, [(3,)])

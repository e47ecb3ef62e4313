"""Invariant P7 (the holdout never trains) and partitioning."""

import numpy as np
import pytest

from client.dataset import load_npz, load_partition, partition_indices, train_holdout
from genai_models import DIGITS


def _rows(a):
    return {r.tobytes() for r in a}


def test_holdout_is_stratified_and_disjoint_from_every_partition():
    train, holdout = train_holdout("digits", 0.3, 0)
    assert len(holdout) == 540 and len(train) == 1257
    assert np.bincount(holdout.y).min() >= 50
    parts = [load_partition("digits", i, 5, scheme="dirichlet", alpha=1.0, holdout=0.3, seed=0)
             for i in range(5)]
    assert sum(len(p) for p in parts) == len(train)
    # digits has a few duplicate images; compare positions, not pixel values.
    idx = np.concatenate(partition_indices("digits", 0.3, 0, 5, "dirichlet", 1.0))
    assert len(np.unique(idx)) == len(idx) == len(train)
    assert len(_rows(holdout.x) & _rows(train.x)) < 5


def test_iid_partitions_are_balanced():
    sizes = [len(p) for p in partition_indices("digits", 0.3, 0, 4, "iid", 1.0)]
    assert max(sizes) - min(sizes) <= 1


def test_unknown_partition_and_too_many_clients_are_errors():
    with pytest.raises(ValueError, match="unknown partition 'zipf'"):
        partition_indices("digits", 0.3, 0, 3, "zipf", 1.0)
    with pytest.raises(ValueError, match="exceeds the 1257 training records"):
        partition_indices("digits", 0.3, 0, 5000, "iid", 1.0)


def test_npz_is_scaled_by_the_public_range_and_clipped(tmp_path):
    path = tmp_path / "owner.npz"
    np.savez(path, x=np.full((3, 8, 8), 20.0), y=np.array([0, 1, 2]))
    data = load_npz(path, DIGITS)
    assert data.x.shape == (3, 64) and data.x.max() == 1.0


def test_npz_with_bad_label_names_file_and_row(tmp_path):
    path = tmp_path / "owner.npz"
    np.savez(path, x=np.zeros((3, 64)), y=np.array([0, 11, 2]))
    with pytest.raises(ValueError, match=r"owner.npz: row 1: label 11 outside 0..9"):
        load_npz(path, DIGITS)


@pytest.mark.parametrize(("labels", "row"), [([0, np.nan, 2], "row 1: label nan"),
                                            ([0, 1, 2.5], "row 2: label 2.5")])
def test_an_npz_label_that_is_no_whole_number_fails_the_file_not_one_batch(tmp_path, labels,
                                                                          row):
    """NaN passes a range check: left in, it would fail only the batches that sample it."""
    path = tmp_path / "owner.npz"
    np.savez(path, x=np.zeros((3, 64)), y=np.array(labels))
    with pytest.raises(ValueError, match=f"owner.npz: {row} outside 0..9"):
        load_npz(path, DIGITS)


def test_canaries_are_seeded_out_of_distribution_and_split_in_two():
    from client.dataset import canaries, with_canaries

    spec = DIGITS
    inserted, held_out = canaries(spec, 8, seed=3)
    again, _ = canaries(spec, 8, seed=3)
    assert np.array_equal(inserted.x, again.x) and len(held_out) == 8
    assert not np.array_equal(inserted.x, held_out.x)
    assert set(np.unique(inserted.x)) <= {0.0, 1.0}  # unlike any digit's grey levels
    base = load_partition("digits", 0, 3, scheme="iid", alpha=1.0, holdout=0.3, seed=3)
    grown = with_canaries(base, spec, 8, seed=3)
    assert len(grown) == len(base) + 8 and np.array_equal(grown.x[-8:], inserted.x)


def test_an_owner_loads_only_its_own_partition(monkeypatch):
    from flwr_datasets.partitioner import IidPartitioner

    calls = []
    real = IidPartitioner.load_partition
    monkeypatch.setattr(IidPartitioner, "load_partition",
                        lambda self, i: calls.append(i) or real(self, i))
    data = load_partition("digits", 7, 400, scheme="iid", alpha=1.0, holdout=0.3, seed=3)
    assert calls == [7]
    whole = partition_indices("digits", 0.3, 3, 400, "iid", 1.0)
    assert len(data) == len(whole[7])

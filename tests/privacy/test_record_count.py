"""P6's record count: Gaussian, keyed, repeatable for the same records, margin on the safe side."""

import statistics

from privacy.record_count import (
    MARGIN_SIGMAS,
    RECORD_COUNT_NOISE,
    delta_fits,
    noisy_record_count,
    record_count_step,
)


def test_the_same_key_and_records_give_the_same_count_so_asking_again_averages_nothing():
    assert noisy_record_count(500, b"k" * 32, b"records") == \
        noisy_record_count(500, b"k" * 32, b"records")


def test_over_keys_the_noise_is_gaussian_of_the_stated_std_around_the_true_count():
    counts = [noisy_record_count(500, i.to_bytes(32, "big"), b"records") for i in range(4000)]
    assert abs(statistics.fmean(counts) - 500) < 6  # 4 standard errors of the mean
    assert abs(statistics.stdev(counts) - RECORD_COUNT_NOISE) < 5
    # Other records under the same key get fresh noise (not the same offset).
    offsets = {noisy_record_count(500, b"k" * 32, bytes([i])) - 500 for i in range(50)}
    assert len(offsets) > 40


def test_the_margin_refuses_near_the_threshold_and_passes_far_below_it():
    margin = MARGIN_SIGMAS * RECORD_COUNT_NOISE
    assert delta_fits(1e-5, 10_000)
    assert not delta_fits(1 / 1000, 1000 - margin)  # exactly at the threshold: refused
    assert delta_fits(1 / 1000, 999 - margin)
    assert not delta_fits(0.01, -10_000)  # a negative noisy count counts as one record
    assert record_count_step() == (RECORD_COUNT_NOISE, 1.0, 1)

"""Checkpoints: the newest is the highest round, whatever the width of its number."""

from server.checkpoints import load_latest, save_checkpoint


def test_the_latest_checkpoint_is_the_highest_round_past_999(tmp_path):
    for r in (998, 999, 1000):
        save_checkpoint(tmp_path, r, {}, {"round": r})
    assert load_latest(tmp_path)["round"] == 1000

"""A failed release is flagged in words; a faithful one is not."""

import numpy as np

from client.dataset import LabelledData
from simulations.collapse import release_flags


def _real(n=400, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = np.clip(rng.normal(0.3 + 0.4 * y[:, None], 0.15, (n, 6)), 0, 1)
    return LabelledData(x, y)


def test_every_row_the_same_person_is_flagged_on_every_count():
    holdout = _real()
    same = LabelledData(np.tile(holdout.x[:1], (300, 1)), np.zeros(300, dtype=int))
    majority = max(holdout.y.mean(), 1 - holdout.y.mean())
    checks = release_flags(same, holdout, {"tstr_accuracy": majority},
                           {"detection_auc": 1.0})
    text = " ".join(checks["flags"])
    assert checks["diversity_ratio"] < 1e-12 and checks["repeated_share"] == 1
    assert "collapse: the synthetic rows vary 0.0%" in text
    assert "100% of synthetic rows repeat another" in text
    assert "ROC AUC 1.000" in text and "majority-class rate" in text


def _utility(accuracy: float, auc: float | None) -> dict:
    tstr = {"accuracy": accuracy} | ({} if auc is None else {"auc": auc})
    return {"tstr_accuracy": accuracy, "classifiers": {"logistic_regression": {"tstr": tstr}}}


def test_a_binary_tstr_is_judged_by_its_ranking_not_by_its_accuracy_at_one_threshold():
    holdout, synthetic = _real(seed=0), _real(seed=1)
    majority = max(holdout.y.mean(), 1 - holdout.y.mean())
    at_chance = release_flags(synthetic, holdout, _utility(0.9, 0.53), {})["flags"]
    assert at_chance == ["useless for prediction: TSTR ROC AUC 0.530 (≤ 0.55); a classifier "
                         "trained on the release ranks real rows no better than chance"]
    # no better than always answering the majority, yet ranks the holdout: not "learned nothing"
    assert release_flags(synthetic, holdout, _utility(majority - 0.06, 0.71), {})["flags"] == [
        f"no better than the majority class: a classifier trained on the release is right on "
        f"{majority - 0.06:.3f} of real rows (always answering the majority class: "
        f"{majority:.3f}), though it ranks them with ROC AUC 0.710"]
    assert release_flags(synthetic, holdout, _utility(0.9, 0.71), {})["flags"] == []
    # no AUC (more than two classes): accuracy at the majority rate is the signal
    assert "majority-class rate" in release_flags(synthetic, holdout, _utility(majority, None),
                                                  {})["flags"][0]


def test_a_faithful_release_raises_no_flag():
    holdout, synthetic = _real(seed=0), _real(seed=1)
    checks = release_flags(synthetic, holdout, {"tstr_accuracy": 0.95},
                           {"detection_auc": 0.52})
    assert checks["flags"] == [] and 0.8 < checks["diversity_ratio"] < 1.25


def test_evaluate_strict_exits_1_on_a_flagged_release(tmp_path, capsys):
    import tomli_w

    from privacy.experiment import ExperimentConfig
    from simulations.cli import main

    run = tmp_path / "run"
    (run / "synthetic").mkdir(parents=True)
    config = ExperimentConfig(epsilon=float("inf"), run_dir=str(run)).to_run_config()
    (run / "config.toml").write_text(tomli_w.dumps(config))
    (run / "report.json").write_text('{"privacy": {"dp": false, "max_epsilon": null, '
                                     '"per_client": [], "client_level": null}, '
                                     '"timings": {}, "model": "vae", "dataset": "digits", '
                                     '"rounds_completed": 1, "rounds_requested": 1, '
                                     '"num_clients": 1, "rejected_updates": []}')
    x = np.full((200, 64), 8.0)
    np.savez(run / "synthetic" / "synthetic.npz", x=x, y=np.arange(200) % 10)
    assert main(["evaluate", str(run)]) == 0
    assert main(["evaluate", str(run), "--strict"]) == 1
    assert "WARNING: collapse" in capsys.readouterr().out
    assert "WARNING: collapse" in (run / "report.md").read_text()

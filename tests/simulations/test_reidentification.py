"""Anonymeter's risks: high for a release that copies its training rows, low for fresh rows."""

import builtins

from client.dataset import sklearn_table
from genai_models import resolve
from simulations.reidentification import anonymeter_risks
from simulations.report import _anonymeter_lines


def _split():
    frame = sklearn_table("wine").sample(frac=1.0, random_state=0).reset_index(drop=True)
    third = len(frame) // 3
    return frame[:third], frame[third:2 * third], frame[2 * third:]


def test_a_release_that_copies_its_training_rows_is_linkable_and_a_fresh_sample_is_not():
    schema = resolve("wine")[1].schema
    train, holdout, fresh = _split()
    copied = anonymeter_risks(train, train, holdout, schema, seed=0)
    unrelated = anonymeter_risks(fresh, train, holdout, schema, seed=0)
    assert copied["measured"] and copied["library"].startswith("anonymeter ")
    assert copied["attacks"] == len(holdout) == 59
    # Copies single out and link nearly every training row; through a release of
    # strangers the training rows fare no worse than the holdout.
    for attack in ("singling_out", "linkability"):
        assert copied[attack]["risk"] > 0.8 and copied[attack]["attack_rate"] > 0.9
        assert unrelated[attack]["risk"] < 0.3
    assert copied["inference"]["risk"] > 0.5 > unrelated["inference"]["risk"]
    for result in (copied, unrelated):
        for attack in ("singling_out", "linkability", "inference"):
            low, high = result[attack]["ci"]
            assert low <= result[attack]["risk"] <= high
    lines = "\n".join(_anonymeter_lines(copied))
    assert "| linkability (alternate columns as the two halves) |" in lines


def test_without_anonymeter_the_report_says_why_instead_of_failing(monkeypatch):
    real_import = builtins.__import__

    def no_anonymeter(name, *args, **kwargs):
        if name.startswith("anonymeter"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_anonymeter)
    train, holdout, _ = _split()
    result = anonymeter_risks(train, train, holdout, resolve("wine")[1].schema, seed=0)
    assert result == {"measured": False, "why": "anonymeter is not installed (make setup "
                      "installs it; by hand: pip install --no-deps anonymeter==1.1.0)"}
    assert "Not measured: anonymeter is not installed" in "\n".join(_anonymeter_lines(result))

"""Anonymeter's re-identification risks of a table release (Giomi et al., PoPETs 2023).

The three attacks the GDPR's guidance on anonymisation names, each run through the
release and scored as the attacker's success on the training rows beyond its success on
the holdout (rows the release never saw, P7): *singling out* (a one-column predicate
true of exactly one training row), *linkability* (one half of a row's columns linked to
the other half through the release), *inference* (the target guessed from the other
columns). 0 means no more risk than for people outside the data; each comes with
Anonymeter's 95% confidence interval. Anonymeter 1.1.0 pins numpy < 1.27 without needing
it: the Makefile installs it without its pins (``--no-deps``), its real dependencies
come with fedsynth's.
"""

from __future__ import annotations

import warnings
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import pandas as pd

from genai_models.schema import Schema
from simulations.quality_report import plain_frame

MAX_ATTACKS = 200
"""Attacks per evaluator (fewer when the holdout is smaller): enough for a CI of about
±0.07 on a rate, and seconds of work on the benchmark's tables."""
NEIGHBOURS = 1
"""Linkability: a pair counts as linked when both halves have the same nearest synthetic
row (Anonymeter's default; with 10 neighbours, a release of a few hundred rows links
almost any two halves, the holdout's as much as the training rows')."""


def anonymeter_risks(synthetic: pd.DataFrame, train: pd.DataFrame, holdout: pd.DataFrame,
                     schema: Schema, seed: int) -> dict:
    """The three risks, or why they were not measured (Anonymeter missing, too few rows)."""
    try:
        from anonymeter.evaluators import (
            InferenceEvaluator,
            LinkabilityEvaluator,
            SinglingOutEvaluator,
        )
        library = f"anonymeter {version('anonymeter')}"
    except (ImportError, PackageNotFoundError):
        return {"measured": False, "why": "anonymeter is not installed (make setup installs "
                "it; by hand: pip install --no-deps anonymeter==1.1.0)"}
    _compile_once()
    attacks = min(MAX_ATTACKS, len(holdout), len(train))
    if attacks < 10:
        return {"measured": False, "why": f"the holdout has {len(holdout)} rows; Anonymeter "
                "needs at least 10 to compare against"}
    syn, ori, ctl = (plain_frame(f, schema) for f in (synthetic, train, holdout))
    names = [c.name for c in schema.columns]
    others = [n for n in names if n != schema.target]
    halves = (names[0::2], names[1::2])
    evaluators = {
        "singling_out": (SinglingOutEvaluator(ori=ori, syn=syn, control=ctl,
                                              n_attacks=attacks), {"mode": "univariate"}),
        "linkability": (LinkabilityEvaluator(ori=ori, syn=syn, control=ctl, n_attacks=attacks,
                                             aux_cols=halves, n_neighbors=NEIGHBOURS),
                        {"n_jobs": 1}),
        "inference": (InferenceEvaluator(ori=ori, syn=syn, control=ctl, aux_cols=others,
                                         secret=schema.target, n_attacks=attacks),
                      {"n_jobs": 1}),
    }
    out: dict = {"measured": True, "library": library, "attacks": attacks,
                 "linkability_columns": [list(h) for h in halves],
                 "inference_secret": schema.target}
    state = np.random.get_state()  # Anonymeter draws its targets from numpy's global RNG
    np.random.seed(seed)
    try:
        for name, (evaluator, options) in evaluators.items():
            try:
                with warnings.catch_warnings():  # "no better than the baseline": in the rates
                    warnings.simplefilter("ignore")
                    evaluator.evaluate(**options)
                    risk, results = evaluator.risk(), evaluator.results()
            except Exception as err:  # e.g. too few singling-out predicates on a tiny release
                out[name] = {"error": f"{type(err).__name__}: {str(err)[:200]}"}
                continue
            out[name] = {"risk": float(risk.value), "ci": [float(v) for v in risk.ci],
                         "attack_rate": float(results.attack_rate.value),
                         "baseline_rate": float(results.baseline_rate.value),
                         "control_rate": float(results.control_rate.value)}
    finally:
        np.random.set_state(state)
    return out


def _compile_once() -> None:
    """Anonymeter's Gower-distance kernels, compiled once per machine instead of per run.

    Its numba kernels do not ask for numba's on-disk cache, so every process compiled
    them again: 7 s of each table run's evaluation here, 0.3 s once cached. The same
    functions, recompiled with ``cache=True``; where numba cannot cache (no writable
    place), they stay as Anonymeter made them.
    """
    from anonymeter.neighbors import mixed_types_kneighbors as knn

    if getattr(knn, "_fedsynth_cached", False):
        return
    try:
        from numba import jit

        cached = {name: jit(nopython=True, nogil=True, cache=True)(getattr(knn, name).py_func)
                  for name in ("gower_distance", "_nearest_neighbors")}
    except Exception:  # numba's "no locator available", or a moved name: compile per run
        return
    for name, kernel in cached.items():
        setattr(knn, name, kernel)
    knn._fedsynth_cached = True

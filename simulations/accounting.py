"""Independent recomputation of epsilon with Google's dp-accounting.

Training used Opacus's accountants; an auditor recomputes every owner's epsilon
from the ledger's events with different code. Each DP-SGD event is
``SelfComposed(PoissonSampled(q, Gaussian(sigma)), steps)``; an owner's events
compose in order.
"""

from __future__ import annotations

from collections.abc import Iterable

from dp_accounting import dp_event
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant

METHODS = ("rdp", "pld")


def dpsgd_event(noise_multiplier: float, sample_rate: float, steps: int) -> dp_event.DpEvent:
    """The dp-accounting event of ``steps`` Poisson-sampled Gaussian steps."""
    return dp_event.SelfComposedDpEvent(
        dp_event.PoissonSampledDpEvent(sample_rate, dp_event.GaussianDpEvent(noise_multiplier)),
        steps,
    )


def recompute_epsilon(events: Iterable[dict], *, delta: float, method: str) -> float:
    """Epsilon of the composition of ledger events (dicts with noise_multiplier, ...)."""
    if method == "rdp":
        accountant = rdp_privacy_accountant.RdpAccountant()
    elif method == "pld":
        accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4)
    else:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
    composed = [
        dpsgd_event(e["noise_multiplier"], e["sample_rate"], e["steps"])
        for e in events
        if e["steps"] > 0
    ]
    if not composed:
        return 0.0
    accountant.compose(dp_event.ComposedDpEvent(composed))
    return float(accountant.get_epsilon(delta))

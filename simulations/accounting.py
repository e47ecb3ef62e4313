"""Independent recomputation of epsilon with Google's dp-accounting.

Training used Opacus's accountants; an auditor recomputes every owner's epsilon
from the ledger's events with different code. Each DP-SGD event is
``SelfComposed(PoissonSampled(q, Gaussian(sigma)), steps)``, preceded by
``Gaussian(class_noise)`` when it released its class counts; an owner's events
compose in order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from dp_accounting import dp_event
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant

from privacy.ledger import history_of

METHODS = ("rdp", "pld")


def dpsgd_event(noise_multiplier: float, sample_rate: float, steps: int) -> dp_event.DpEvent:
    """The dp-accounting event of ``steps`` Poisson-sampled Gaussian steps (rate 1: none)."""
    gaussian = dp_event.GaussianDpEvent(noise_multiplier)
    step = gaussian if sample_rate == 1 else dp_event.PoissonSampledDpEvent(sample_rate,
                                                                            gaussian)
    return dp_event.SelfComposedDpEvent(step, steps)


def recompute_epsilon(events: Iterable[dict], *, delta: float, method: str) -> float:
    """Epsilon of the composition of ledger events (dicts with noise_multiplier, ...)."""
    if method == "rdp":
        accountant = rdp_privacy_accountant.RdpAccountant()
    elif method == "pld":
        accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4)
    else:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
    # Runs of events with the same (noise, rate) compose into one self-composed
    # event: the same mathematics, far less work for the PLD accountant.
    runs: list[list] = []
    for sigma, q, steps in (h for e in events for h in history_of(e)):
        if steps <= 0:
            continue
        key = (float(sigma), float(q))
        if runs and runs[-1][0] == key:
            runs[-1][1] += int(steps)
        else:
            runs.append([key, int(steps)])
    if not runs:
        return 0.0
    with _quiet_absl():
        accountant.compose(
            dp_event.ComposedDpEvent([dpsgd_event(sigma, q, k) for (sigma, q), k in runs])
        )
        return float(accountant.get_epsilon(delta))


@contextlib.contextmanager
def _quiet_absl():
    """Silence dp-accounting's per-order warnings (absl) while it computes.

    It logs each fractional RDP order it cannot evaluate and then excludes; the
    result stays a valid upper bound, so the terminal need not hear about it.
    """
    from absl import logging as absl_logging

    level = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        yield
    finally:
        absl_logging.set_verbosity(level)

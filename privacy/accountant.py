"""An owner's privacy budget: calibrate noise once, then never train past the budget (P4).

Histories are Opacus accountant histories, lists of ``(noise_multiplier,
sample_rate, steps)``; the accountant is always named explicitly. For RDP the
per-step Rényi divergences of a ``(sample_rate, noise)`` pair are computed once
and scaled by the step count, which is exactly what Opacus's ``RDPAccountant``
sums, without recomputing the slow fractional orders for every question.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import numpy as np
from opacus.accountants import RDPAccountant, create_accountant
from opacus.accountants.analysis import rdp as rdp_analysis
from opacus.accountants.utils import get_noise_multiplier

History = list[tuple[float, float, int]]

# A subset of the accountant's orders: an epsilon over fewer orders is never
# smaller, so noise calibrated with them is conservative; fractional orders are
# the slow ones, and a coarse grid of them (small orders matter at large q)
# keeps calibration within ~1% of the full set at a tenth of the cost.
_CALIBRATION_ORDERS = sorted(
    {1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8, 2.5, 3.5, 4.5} | {float(a) for a in range(2, 64)}
)


@lru_cache(maxsize=1024)
def _rdp_per_step(sample_rate: float, noise_multiplier: float, orders: tuple) -> np.ndarray:
    return np.asarray(
        rdp_analysis.compute_rdp(
            q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=list(orders)
        )
    )


def _rdp_epsilon(history: History, delta: float, orders: tuple) -> float:
    rdp = sum(k * _rdp_per_step(q, sigma, orders) for sigma, q, k in history)
    with warnings.catch_warnings():
        # "Optimal order is the smallest alpha" only says a tighter bound may exist.
        warnings.simplefilter("ignore", UserWarning)
        eps, _ = rdp_analysis.get_privacy_spent(orders=list(orders), rdp=rdp, delta=delta)
    return float(eps)


def rdp_epsilon_floor(delta: float) -> float:
    """The smallest epsilon Opacus's RDP orders can certify at ``delta``, however much noise.

    The RDP-to-(ε, δ) conversion adds a term that depends only on the order and δ;
    with orders up to 63 it stays near 0.1 at δ = 1e-5.
    """
    return min(
        math.log((a - 1) / a) - (math.log(delta) + math.log(a)) / (a - 1)
        for a in RDPAccountant.DEFAULT_ALPHAS
    )


def _canonical(history: History) -> tuple:
    """Merge consecutive entries of equal (noise, rate), as Opacus's accountants do."""
    merged: list[list] = []
    for sigma, q, k in history:
        if k <= 0:
            continue
        if merged and merged[-1][0] == sigma and merged[-1][1] == q:
            merged[-1][2] += k
        else:
            merged.append([sigma, q, k])
    return tuple(tuple(h) for h in merged)


def epsilon_of(history: History, *, accountant: str, delta: float) -> float:
    """Cumulative epsilon of a history (0 for an empty one), as the named Opacus accountant says."""
    return _epsilon(_canonical(history), accountant, delta)


@lru_cache(maxsize=4096)
def _epsilon(history: tuple, accountant: str, delta: float) -> float:
    # Cached: planning a round asks about the same history more than once, and a
    # PRV evaluation takes a good fraction of a second.
    if not history:
        return 0.0
    if accountant == "rdp":
        return _rdp_epsilon(list(history), delta, tuple(RDPAccountant.DEFAULT_ALPHAS))
    acc = create_accountant(mechanism=accountant)
    acc.history = [tuple(h) for h in history]
    return float(acc.get_epsilon(delta=delta))


def calibrate_noise(
    *, epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str,
    history: History = (),
) -> float:
    """The noise multiplier at which ``steps`` more steps after ``history`` reach ``epsilon``.

    The steps are Poisson-sampled at ``sample_rate``; the epsilon is cumulative. RDP
    calibration uses a subset of the orders (conservative: the accountant's full
    set then reports a slightly smaller epsilon); the budget itself is enforced
    by :func:`steps_that_fit` with the real accountant. Raises ValueError when no
    noise up to 1e6 fits (``history`` alone spends the budget).
    """
    if accountant != "rdp" and not history:
        return float(
            get_noise_multiplier(
                target_epsilon=epsilon,
                target_delta=delta,
                sample_rate=sample_rate,
                steps=steps,
                accountant=accountant,
                epsilon_tolerance=0.005 * epsilon,
            )
        )
    # After a history, PRV is calibrated with RDP too: RDP's epsilon is never below
    # PRV's, so the plan is conservative, and a bisection over PRV would cost minutes.
    orders = tuple(_CALIBRATION_ORDERS)

    def spent(sigma: float) -> float:
        return _rdp_epsilon([*history, (sigma, sample_rate, steps)], delta, orders)

    if history and _rdp_epsilon(list(history), delta, orders) >= epsilon:
        raise ValueError(f"epsilon={epsilon} is too small: the history spends more already")
    low, high = 0.3, 1.0
    while spent(high) > epsilon:
        low, high = high, high * 2
        if high > 1e6:
            raise ValueError(f"epsilon={epsilon} is too small for {steps} steps")
    while high - low > 1e-3 * high:
        mid = (low + high) / 2
        low, high = (mid, high) if spent(mid) > epsilon else (low, mid)
    return float(high)


def steps_that_fit(
    history: History,
    *,
    noise_multiplier: float,
    sample_rate: float,
    wanted: int,
    budget: float,
    delta: float,
    accountant: str,
) -> int:
    """The most steps, up to ``wanted``, that keep the cumulative epsilon within ``budget``.

    Epsilon grows with steps, so a binary search over the step count is exact.
    """

    def fits(steps: int) -> bool:
        planned = [*history, (noise_multiplier, sample_rate, steps)]
        return epsilon_of(planned, accountant=accountant, delta=delta) <= budget

    if wanted <= 0:
        return 0
    if fits(wanted):
        return wanted
    if not fits(1):
        return 0
    low, high = 1, wanted  # fits(low) holds, fits(high) does not
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low

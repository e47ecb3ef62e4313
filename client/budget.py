"""An owner's privacy budget: calibrate noise once, then never train past the budget (P4).

Histories are Opacus accountant histories, lists of ``(noise_multiplier,
sample_rate, steps)``; the accountant is always named explicitly.
"""

from __future__ import annotations

from opacus.accountants import create_accountant
from opacus.accountants.utils import get_noise_multiplier

History = list[tuple[float, float, int]]


def epsilon_of(history: History, *, accountant: str, delta: float) -> float:
    """Cumulative epsilon of a history (0 for an empty one)."""
    if not history:
        return 0.0
    acc = create_accountant(mechanism=accountant)
    acc.history = list(history)
    return float(acc.get_epsilon(delta=delta))


def calibrate_noise(
    *, epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str
) -> float:
    """The noise multiplier at which ``steps`` Poisson-sampled steps spend ``epsilon``."""
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

    if wanted <= 0 or not fits(1):
        return 0
    if fits(wanted):
        return wanted
    low, high = 1, wanted  # fits(low) holds, fits(high) does not
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low

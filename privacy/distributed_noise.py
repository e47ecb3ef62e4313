"""Distributed noise: each owner adds a share of the DP noise; only the secure sum is seen.

The mechanism, per round (DP-FedSGD, one DP-SGD step per round): every owner draws a
Poisson batch at the public rate q, clips each record's gradient to C, sums, projects
the sum onto the ball of radius ``SUM_BOUND``·B·C (1-Lipschitz: one record still
moves it by at most C) and divides by the public batch size B. It rounds that vector
to the secure-aggregation grid (step Δ), adds Gaussian noise of std s per coordinate,
rounded to the grid too, and hands it to Flower's SecAgg+, which reveals only the sum.

What the sum carries: if at least ``honest`` = survivors − colluders owners that
follow the protocol are in it, their noise has std ≥ s·√honest per coordinate.
Rounding to the grid moves one record's contribution by at most Δ·√d more, so the
sensitivity is C/B + Δ√d and the accounted noise multiplier is
s·√honest / (C/B + Δ√d). The shares are Gaussians rounded to the grid. This is an
approximation the accountant makes and the note states: at s/Δ ≥ ``MIN_STEPS`` a
rounded Gaussian's probabilities differ from a discrete Gaussian's by a relative
O((Δ/s)²) ≤ 1e-6, a sum of discrete Gaussians is one to within exp(-10^6) (Kairouz,
Liu & Steinke 2021, the distributed discrete Gaussian), and a discrete Gaussian's
Rényi DP is at most the continuous Gaussian's (Canonne, Kamath & Steinke 2020); the
accountant treats the sum as the continuous Gaussian. Every value sent fits SecAgg+'s
clipping range R (a power of two, so Flower's quantisation maps grid values exactly)
unless a noise draw exceeds ``TAIL`` standard deviations (probability below 1e-75 over
any run): far below every delta used, and not added to it.

Everything here is computed from the public proposal and the model's parameter count,
so owners, coordinator and auditor derive the same numbers.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

QUANTIZATION_RANGE = 2**24
"""SecAgg+'s integers per value: Δ = 2R / 2^24."""
MODULUS_RANGE = 2**32
"""SecAgg+'s modulus (Flower's default and maximum)."""
MAX_OWNERS = MODULUS_RANGE // QUANTIZATION_RANGE - 1
"""The most owners one sum may hold before the modulus could wrap (255)."""
SUM_BOUND = 4.0
"""An owner's clipped-gradient sum is projected onto norm SUM_BOUND·B·C (4 public batches)."""
TAIL = 20.0
"""Noise draws up to this many standard deviations fit the clipping range."""
MIN_STEPS = 1000.0
"""The noise share must span at least this many grid steps (s/Δ)."""
KEY_PROOF = "fedsynth-key-proof"
"""The record an owner adds to its SecAgg+ setup reply: its id and its signature (with
its ledger-signing key) of its fresh SecAgg+ public keys."""
KEY_PROOFS = "fedsynth-key-proofs"
"""The record the coordinator forwards with the share-keys stage: each neighbour's proof."""
REFUSAL_MARK = "fedsynth-privacy:"
"""An owner that declines inside a secure sum leaves it (a reply without a masked
vector would count as noise that is not there); its signed privacy record (JSON)
travels as the error reply's reason, after this prefix."""


class NoiseTooSmall(ValueError):
    """The proposal's noise is too small for SecAgg+'s grid to carry it faithfully."""


@dataclass(frozen=True)
class SecureSumPlan:
    """The public numbers of one distributed-noise proposal."""

    noise_multiplier: float
    """What the accountant is told: the noise the sum carries, per unit of sensitivity."""
    survivors: int
    """Owners that must be in a sum for it to be released (SecAgg+'s threshold)."""
    colluders: int
    """Owners that may collude with the coordinator: their shares are not counted."""
    max_grad_norm: float
    batch_size: int
    dimension: int
    """Number of model parameters (the length of each owner's vector)."""
    owners: int
    """Owners the proposal names: no secure sum may hold more participants."""

    @property
    def honest(self) -> int:
        """Owners whose noise the guarantee counts on."""
        return self.survivors - self.colluders

    @property
    def clipping_range(self) -> float:
        """SecAgg+'s R: a power of two above the largest value an honest owner sends."""
        signal = SUM_BOUND * self.max_grad_norm
        loose = 2 * TAIL * self.noise_multiplier * self.max_grad_norm / self.batch_size \
            / math.sqrt(self.honest)
        return float(2.0 ** math.ceil(math.log2(signal + loose)))

    @property
    def grid(self) -> float:
        """Δ: the value of one SecAgg+ integer step."""
        return 2 * self.clipping_range / QUANTIZATION_RANGE

    @property
    def sensitivity(self) -> float:
        """How far one record moves an owner's grid vector: C/B plus the rounding, Δ√d."""
        return self.max_grad_norm / self.batch_size + self.grid * math.sqrt(self.dimension)

    @property
    def share_std(self) -> float:
        """s: the std of each owner's noise per coordinate."""
        return self.noise_multiplier * self.sensitivity / math.sqrt(self.honest)

    def check(self) -> SecureSumPlan:
        """Refuse a plan whose noise the grid cannot carry faithfully."""
        if self.share_std < MIN_STEPS * self.grid:
            raise NoiseTooSmall(
                f"each owner's noise share ({self.share_std:.3g}) spans fewer than "
                f"{MIN_STEPS:g} SecAgg+ grid steps of {self.grid:.3g}; a smaller epsilon or "
                "fewer colluders leaves more noise")
        if SUM_BOUND * self.max_grad_norm + TAIL * self.share_std > self.clipping_range:
            raise NoiseTooSmall("the noise share does not fit SecAgg+'s clipping range")
        return self

    def mismatches(self, entry: dict) -> list[str]:
        """The fields of a spend event that differ from this plan (floats to 1e-9)."""
        wanted = {**self.ledger_fields(), "noise_multiplier": self.noise_multiplier}
        out = []
        for key, value in wanted.items():
            got = entry.get(key)
            if isinstance(value, float):
                same = isinstance(got, float) and math.isclose(got, value, rel_tol=1e-9)
            else:
                same = got == value and type(got) is type(value)
            if not same:
                out.append(key)
        return out

    def session_findings(self, entry: dict) -> list[str]:
        """What an owner signed about the SecAgg+ session it joined, against this plan."""
        n, t = entry.get("secagg_participants"), entry.get("secagg_threshold")
        if not isinstance(n, int) or not isinstance(t, int):
            return ["no SecAgg+ session (participants, threshold) is signed"]
        if n > self.owners or t < self.survivors or 2 * t <= n + self.colluders:
            return [f"SecAgg+ held {n} participants at threshold {t}; the plan needs at most "
                    f"{self.owners}, a threshold of {self.survivors} or more, and a majority "
                    f"beyond {self.colluders} colluders"]
        return []

    def ledger_fields(self) -> dict:
        """What an owner's spend line states about the mechanism and its trust assumption."""
        return {"noise": "distributed", "survivors": self.survivors,
                "colluders": self.colluders, "noise_share": self.share_std,
                "grid": self.grid}


def survivors(num_clients: int, dropout_margin: float) -> int:
    """Owners that must be in a round's sum: all but the stated share that may drop."""
    return num_clients - math.floor(dropout_margin * num_clients)


def assumption(survivors_: int, colluders: int) -> str:
    """The trust assumption a distributed-noise epsilon rests on, in one sentence."""
    return (f"holds if at most {colluders} of the registered owners collude with the "
            f"coordinator: every sum it can unmask then holds the noise of at least "
            f"{survivors_ - colluders} honest owners (each owner's gate refuses SecAgg+ "
            f"steps that would reveal less; a sum of fewer than {survivors_} owners is "
            "discarded), with the sum of rounded Gaussian shares accounted as a Gaussian")


def public_noise(settings) -> tuple[float, bool]:
    """The noise multiplier every owner's share is calibrated to, and whether counts go too.

    Public: from the proposal alone (the same for every owner, unlike local noise,
    which an owner with less budget left raises). ``rounds`` one-step rounds spend the
    proposal's epsilon; the class counts (one Gaussian step at q = 1) come along when
    they raise that noise by at most ``COUNTS_COST``. An owner whose lifetime budget
    cannot take a step of it refuses rather than adding more noise than the others.
    """
    from privacy.accountant import calibrate_noise
    from privacy.experiment import COUNTS_COST

    plan = {"epsilon": settings.epsilon, "delta": settings.delta,
            "sample_rate": settings.sample_rate, "steps": settings.rounds,
            "accountant": settings.accountant}
    sigma = calibrate_noise(**plan)
    if not settings.releases_counts:
        return sigma, False
    with_counts = calibrate_noise(history=[(settings.class_noise, 1.0, 1)], **plan)
    if with_counts <= sigma * (1 + COUNTS_COST):
        return with_counts, True
    return sigma, False


def plan_for(settings, spec) -> SecureSumPlan:
    """The checked plan of a distributed-noise proposal, for its model on data ``spec``.

    The vector each owner sends is as long as the network that reads its records has
    weights (the whole VAE; the GAN's discriminator).
    """
    from genai_models import build_model

    model = build_model(settings.model, spec, hidden_dim=settings.hidden_dim,
                        latent_dim=settings.latent_dim)
    dimension = sum(p.numel() for p in model.record_network.parameters() if p.requires_grad)
    sigma, _ = public_noise(settings)
    return SecureSumPlan(
        noise_multiplier=sigma,
        survivors=survivors(settings.num_clients, settings.dropout_margin),
        colluders=settings.colluders, max_grad_norm=settings.max_grad_norm,
        batch_size=settings.batch_size, dimension=dimension,
        owners=settings.num_clients).check()


def privacy_of_error(reason: str) -> dict | None:
    """The signed privacy record an owner's error reason carries, or None."""
    if not isinstance(reason, str) or not reason.startswith(REFUSAL_MARK):
        return None
    try:
        record = json.loads(reason[len(REFUSAL_MARK):])
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def key_digest(node_id: int, pk1: bytes, pk2: bytes, proposal: str) -> str:
    """What an owner signs to vouch for its SecAgg+ public keys on this node.

    The proposal's digest is in it: an owner counts only participants that signed the
    same proposal (the same noise share, survivors and colluders), so a coordinator
    cannot serve some owners a proposal with smaller shares.
    """
    body = b"|".join((b"fedsynth-secagg-keys", str(node_id).encode("ascii"), pk1, pk2,
                      proposal.encode("ascii")))
    return hashlib.sha256(body).hexdigest()


def session_id(pk1: bytes, pk2: bytes) -> str:
    """An owner's SecAgg+ session, named by its own fresh public keys (single use)."""
    return hashlib.sha256(b"fedsynth-secagg-session|" + pk1 + b"|" + pk2).hexdigest()

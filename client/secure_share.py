"""An owner's part in distributed noise: one noisy DP-SGD share, and the SecAgg+ gate.

:func:`noisy_share` computes what the owner hands to Flower's SecAgg+ in one round
(see :mod:`privacy.distributed_noise` for the mechanism and its accounting).
:func:`secure_sum_mod` runs Flower's ``secaggplus_mod`` for the messages of a secure
sum, after checking that the coordinator's SecAgg+ settings are the ones the owner's
accounting assumes (threshold, clipping range, quantisation, modulus, weight, every
owner a neighbour): other settings would let fewer owners' noise be revealed, or
re-round the owner's values. A refusal inside a secure sum leaves the sum (a reply
without a masked vector would count as an owner whose noise is in it) and travels
as the error reply's reason instead.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from flwr.app import ConfigRecord, Context, Error, Message
from flwr.client.mod import secaggplus_mod
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from opacus.optimizers.optimizer import _generate_noise

from client.dataset import LabelledData
from client.linear_clipping import LinearClipper
from privacy.distributed_noise import (
    MODULUS_RANGE,
    QUANTIZATION_RANGE,
    REFUSAL_MARK,
    SUM_BOUND,
    SecureSumPlan,
)

ERROR_CODE = 0  # flwr's ErrorCode.UNKNOWN: the owner declined; the reason says how


def noisy_share(model: torch.nn.Module, data: LabelledData, plan: SecureSumPlan, *,
                sample_rate: float, generator: torch.Generator) -> list[np.ndarray]:
    """One Poisson batch's clipped gradient sum, projected, scaled, noised, on the grid.

    Returns float64 arrays in ``model.parameters()`` order, every value a multiple of
    the grid step within ±R (Flower's quantisation then maps them exactly).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    clipper = LinearClipper(model, loss_reduction="mean")
    try:
        mask = torch.rand(len(data), generator=generator) < sample_rate
        xb, yb = torch.from_numpy(data.x)[mask], torch.from_numpy(data.y)[mask]
        model.train()
        model.zero_grad(set_to_none=True)
        if len(xb):
            loss = model(xb, yb, generator=generator).sum() / len(xb)
            loss.backward()
        sums = clipper.clipped_sums(plan.max_grad_norm)
    finally:
        clipper.remove()
        model.zero_grad(set_to_none=True)
    flat = torch.cat([sums[p].detach().double().reshape(-1) for p in params])
    norm = float(flat.norm())
    limit = SUM_BOUND * plan.batch_size * plan.max_grad_norm
    if norm > limit:  # projection onto a ball: one record still moves it by at most C
        flat = flat * (limit / norm)
    step, bound = plan.grid, plan.clipping_range
    signal = torch.round(flat / plan.batch_size / step)
    noise = _generate_noise(std=plan.share_std, reference=flat, generator=generator,
                            secure_mode=True)
    values = (signal + torch.round(noise / step)) * step
    values = values.clamp(-bound, bound)  # reached only past TAIL standard deviations
    out, start = [], 0
    for p in params:
        out.append(values[start:start + p.numel()].reshape(p.shape).numpy().copy())
        start += p.numel()
    return out


def expected_settings(plan: SecureSumPlan) -> dict:
    """The SecAgg+ setup values an owner's accounting needs (key → value)."""
    return {Key.CLIPPING_RANGE: plan.clipping_range, Key.TARGET_RANGE: QUANTIZATION_RANGE,
            Key.MOD_RANGE: MODULUS_RANGE, Key.MAX_WEIGHT: 1.0}


def check_setup(configs: ConfigRecord, plan: SecureSumPlan) -> None:
    """Raise ValueError unless the coordinator's SecAgg+ setup is what the plan assumes."""
    for key, value in expected_settings(plan).items():
        if configs.get(key) != value:
            raise ValueError(f"SecAgg+ {key}={configs.get(key)!r}; this owner's accounting "
                             f"needs {value!r}")
    samples, shares = configs.get(Key.SAMPLE_NUMBER), configs.get(Key.SHARE_NUMBER)
    if shares != samples:
        raise ValueError(f"SecAgg+ shares each key among {shares} of {samples} owners; every "
                         "owner must be a neighbour")
    if not isinstance(configs.get(Key.THRESHOLD), int) or \
            configs.get(Key.THRESHOLD) < plan.survivors:
        raise ValueError(f"SecAgg+ threshold {configs.get(Key.THRESHOLD)!r} is below the "
                         f"{plan.survivors} owners every released sum must hold")


class Declined(Exception):
    """The owner's train step declined (refused, exhausted, replayed, failed) in a secure sum."""

    def __init__(self, privacy: dict):
        super().__init__("declined")
        self.privacy = privacy


def declined_reply(msg: Message, privacy: dict) -> Message:
    """An error reply whose reason carries the owner's signed privacy record."""
    return Message(Error(code=ERROR_CODE, reason=REFUSAL_MARK + json.dumps(privacy)),
                   reply_to=msg)


def is_secure_sum(msg: Message) -> bool:
    """Whether a train message belongs to a SecAgg+ secure sum."""
    return RECORD_KEY_CONFIGS in msg.content.config_records


def run_secure_stage(msg: Message, context: Context, call_next, plan_of) -> Message:
    """Flower's ``secaggplus_mod`` around ``call_next``, gated by the owner's checks.

    ``plan_of()`` gives the plan of the owner's proposal (raising when there is none).
    """
    configs = msg.content.config_records[RECORD_KEY_CONFIGS]
    if configs.get(Key.STAGE) == Stage.SETUP:
        check_setup(configs, plan_of())
    try:
        return secaggplus_mod(msg, context, call_next)
    except Declined as declined:
        return declined_reply(msg, declined.privacy)


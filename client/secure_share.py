"""An owner's part in distributed noise: one noisy DP-SGD share, and the SecAgg+ gate.

:func:`noisy_share` computes what the owner hands to Flower's SecAgg+ in one round
(see :mod:`privacy.distributed_noise` for the mechanism and its accounting).
:func:`run_secure_stage` runs Flower's ``secaggplus_mod`` for a secure sum's messages
behind the owner's own checks, stage by stage: Flower's exact train type only; at
setup, the settings its accounting assumes (threshold, clipping range, quantisation,
modulus, weight of exact types, every owner a neighbour, at most the proposal's
owners, a threshold that is a majority beyond the colluders); at share-keys, every
participant's SecAgg+ keys vouched for (signed with the ledger-signing key, bound to
the proposal) by a distinct owner of the owner's own registry (``owner-keys``), so a
coordinator can neither invent participants nor serve some owners smaller shares; at
collect, one per setup, key shares and pairwise keys that Flower's mod would accept,
checked *before* the owner trains and spends; at unmask, one per collect, no owner
listed dead (no pairwise key is ever handed over), this owner alive, only owners whose
shares it holds, enough of them. A session is bound to the proposal it was set up
under. Only inside the mod, after those checks, does the owner compute a share
(:data:`SESSION`, which also names the session so that the owner's ledger refuses a
second share under the same masks): a message merely shaped like a secure sum's gets
none. A refusal inside a secure sum leaves the sum (a reply without a masked vector
would count as an owner whose noise is in it) and travels as the error reply's reason.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flwr.app import ConfigRecord, Context, Error, Message
from flwr.app.message_type import MessageType
from flwr.client.mod import secaggplus_mod
from flwr.client.mod.secure_aggregation.secaggplus_mod import SecAggPlusState
from flwr.common.secure_aggregation.crypto.symmetric_encryption import (
    decrypt,
    generate_shared_key,
)
from flwr.common.secure_aggregation.secaggplus_constants import (
    RECORD_KEY_CONFIGS,
    RECORD_KEY_STATE,
    Key,
    Stage,
)
from flwr.common.secure_aggregation.secaggplus_utils import share_keys_plaintext_separate
from flwr.supercore.primitives.asymmetric import bytes_to_private_key, bytes_to_public_key
from opacus.optimizers.optimizer import _generate_noise

from client.dataset import LabelledData
from privacy import secagg_masks
from privacy.distributed_noise import (
    KEY_PROOF,
    KEY_PROOFS,
    MODULUS_RANGE,
    QUANTIZATION_RANGE,
    REFUSAL_MARK,
    SUM_BOUND,
    SecureSumPlan,
    key_digest,
    session_id,
)
from privacy.linear_clipping import clipped_gradient_sum
from privacy.signing import Signer

secagg_masks.install()  # this owner's masks come from the full key (see privacy.secagg_masks)

ERROR_CODE = 0  # flwr's ErrorCode.UNKNOWN: the owner declined; the reason says how
GATE_RECORD = "fedsynth-secure-gate"
"""The owner's own note of the current secure sum (in the node's context state)."""
SESSION: ContextVar[dict | None] = ContextVar("fedsynth_secure_session", default=None)
"""Set only while Flower's mod runs the owner's training in a checked collect stage:
what the owner saw at setup (participants, threshold), signed into its spend."""


def noisy_share(model: torch.nn.Module, data: LabelledData, plan: SecureSumPlan, *,
                sample_rate: float, generator: torch.Generator) -> list[np.ndarray]:
    """One Poisson batch's clipped gradient sum, projected, scaled, noised, on the grid.

    The gradient is the model's per-record loss on real records over its
    ``record_network`` (the whole VAE; the GAN's discriminator). Returns float64 arrays
    in that network's ``parameters()`` order, every value a multiple of the grid step
    within ±R (Flower's quantisation then maps them exactly).
    """
    network = model.record_network
    params = [p for p in network.parameters() if p.requires_grad]
    mask = torch.rand(len(data), generator=generator) < sample_rate
    xb, yb = torch.from_numpy(data.x)[mask], torch.from_numpy(data.y)[mask]
    model.train()
    sums = clipped_gradient_sum(
        network, lambda: model.record_loss(xb, yb, generator=generator), len(xb),
        plan.max_grad_norm)
    flat = torch.cat([sums[p].detach().double().reshape(-1) for p in params])
    if not torch.isfinite(flat).all():  # NaN would pass the clamp and erase the noise
        raise ValueError("the clipped gradient sum is not finite")
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


@dataclass(frozen=True)
class SecureOwner:
    """What an owner's gate needs: the proposal's plan, who the owner is, whom it knows."""

    plan: SecureSumPlan
    client_id: int
    signer: Signer
    registry: dict[int, Ed25519PublicKey]
    """The owners' registered public keys (``owner-keys``): the only participants counted."""
    proposal: str
    """The digest of the proposal this owner trains under (every counted owner's too)."""


def key_proof(owner: SecureOwner, node_id: int, configs: ConfigRecord) -> ConfigRecord:
    """The owner's signed word for the SecAgg+ keys its setup reply carries."""
    digest = key_digest(node_id, configs[Key.PUBLIC_KEY_1], configs[Key.PUBLIC_KEY_2],
                        owner.proposal)
    return ConfigRecord({"client-id": owner.client_id, "signature": owner.signer.sign(digest)})


def check_keys(configs: ConfigRecord, proofs: ConfigRecord | None, owner: SecureOwner) -> None:
    """Every participant's SecAgg+ keys are vouched for by a distinct registered owner.

    A participant the coordinator invented (its keys, its shares) would count as an
    owner whose noise is in the sum; an owner refuses to share keys with one.
    """
    proofs = proofs or ConfigRecord({})
    owners = set()
    nodes = [k for k in configs if k != Key.STAGE]
    for node in nodes:
        keys, proof = configs[node], proofs.get(node)
        try:
            vouched = json.loads(proof)
            cid, signature = int(vouched["client-id"]), vouched["signature"]
            owner.registry[cid].verify(bytes.fromhex(signature), key_digest(
                int(node), keys[0], keys[1], owner.proposal).encode("ascii"))
        except Exception:  # no proof, an unknown owner, a bad signature: all the same
            raise ValueError(f"participant {node}'s SecAgg+ keys are not vouched for by a "
                             "registered owner under this proposal") from None
        if cid in owners:
            raise ValueError(f"owner {cid} vouches for two participants")
        owners.add(cid)
    if len(owners) < owner.plan.survivors:
        raise ValueError(f"{len(owners)} registered owners share keys; every sum must hold "
                         f"{owner.plan.survivors}")


def expected_settings(plan: SecureSumPlan) -> dict:
    """The SecAgg+ setup values an owner's accounting needs (key → value)."""
    return {Key.CLIPPING_RANGE: plan.clipping_range, Key.TARGET_RANGE: QUANTIZATION_RANGE,
            Key.MOD_RANGE: MODULUS_RANGE, Key.MAX_WEIGHT: 1.0}


def check_setup(configs: ConfigRecord, plan: SecureSumPlan) -> None:
    """Raise ValueError unless the coordinator's SecAgg+ setup is what the plan assumes.

    Besides the values that make Flower's quantisation exact: every owner a neighbour,
    at most the proposal's owners in the sum, and a threshold of at least the survivors
    that is also a majority beyond the colluders, so that no two disjoint groups of
    honest owners can each hand over enough shares to unmask one owner alone.
    """
    for key, value in expected_settings(plan).items():
        got = configs.get(key)  # of the exact type too: Flower's mod refuses any other
        if type(got) is not type(value) or got != value:
            raise ValueError(f"SecAgg+ {key}={got!r}; this owner's accounting needs {value!r}")
    samples, shares = configs.get(Key.SAMPLE_NUMBER), configs.get(Key.SHARE_NUMBER)
    threshold = configs.get(Key.THRESHOLD)
    if not all(type(v) is int for v in (samples, shares, threshold)):
        raise ValueError("SecAgg+ sample number, share number and threshold must be integers")
    if shares != samples:
        raise ValueError(f"SecAgg+ shares each key among {shares} of {samples} owners; every "
                         "owner must be a neighbour")
    if not 2 <= samples <= plan.owners:
        raise ValueError(f"SecAgg+ sums {samples} participants; the proposal has "
                         f"{plan.owners} owners")
    if threshold > samples:
        raise ValueError(f"SecAgg+ threshold {threshold} exceeds its {samples} participants")
    if threshold < plan.survivors or 2 * threshold <= samples + plan.colluders:
        raise ValueError(f"SecAgg+ threshold {threshold} is below the {plan.survivors} owners "
                         f"every released sum must hold, or no majority of {samples} "
                         f"participants beyond {plan.colluders} colluders")


def _flower_state(context: Context) -> SecAggPlusState:
    record = context.state.config_records.get(RECORD_KEY_STATE)
    if record is None:
        raise ValueError("no SecAgg+ setup precedes this stage")
    return SecAggPlusState(**record)


def check_collect(configs: ConfigRecord, context: Context, plan: SecureSumPlan) -> None:
    """Before any spend: the forwarded key shares are enough, from distinct neighbours, to me.

    Flower's mod checks them only after the owner has trained (and spent); a failure
    there would spend for nothing, again and again.
    """
    state = _flower_state(context)
    if state.current_stage != Stage.SHARE_KEYS:
        raise ValueError(f"a collect stage after {state.current_stage!r}, not after share-keys")
    srcs, texts = configs.get(Key.SOURCE_LIST), configs.get(Key.CIPHERTEXT_LIST)
    if not isinstance(srcs, list) or not isinstance(texts, list) or len(srcs) != len(texts):
        raise ValueError("the forwarded key shares are malformed")
    if len(set(srcs)) != len(srcs) or len(srcs) + 1 < max(state.threshold, plan.survivors):
        raise ValueError(f"{len(srcs)} distinct key shares forwarded; at least "
                         f"{max(state.threshold, plan.survivors) - 1} are needed")
    own = bytes_to_private_key(state.sk1)
    for src, text in zip(srcs, texts, strict=True):
        if src not in state.ss2_dict or src not in state.public_keys_dict:
            raise ValueError(f"a key share from {src}, not a neighbour of this owner")
        actual, dst, _, _ = share_keys_plaintext_separate(decrypt(state.ss2_dict[src], text))
        if actual != src or dst != state.nid:
            raise ValueError(f"a key share claiming {src} -> {dst} came from {actual}")
        # the pairwise mask needs the source's first key: a bad one would fail after the spend
        generate_shared_key(own, bytes_to_public_key(state.public_keys_dict[src][0]))


def check_unmask(configs: ConfigRecord, context: Context, plan: SecureSumPlan) -> None:
    """Only private-mask shares of owners whose key shares this owner holds, enough of them.

    A dead list is refused outright: handing over an owner's pairwise key lets a
    coordinator that sends each owner a different list (or forwarded few key shares)
    strip one owner's masks and read its share alone. Without it, any sum the
    coordinator can unmask holds every honest owner whose pairwise masks touch it, at
    least ``survivors - colluders`` of them; an owner lost between key sharing and
    collection makes the round unrecoverable (it is discarded, not released).
    """
    state = _flower_state(context)
    if state.current_stage != Stage.COLLECT_MASKED_VECTORS:
        raise ValueError(f"an unmask stage after {state.current_stage!r}, not after collect")
    active, dead = configs.get(Key.ACTIVE_NODE_ID_LIST), configs.get(Key.DEAD_NODE_ID_LIST)
    if not isinstance(active, list) or not isinstance(dead, list):
        raise ValueError("the unmask lists are malformed")
    if dead:
        raise ValueError("an unmask stage with owners listed dead: this owner hands over no "
                         "pairwise key (the round is discarded)")
    if len(set(active)) != len(active) or not set(active) <= set(state.rd_seed_share_dict):
        raise ValueError("the unmask list repeats owners or names one whose share this owner "
                         "does not hold")
    if state.nid not in active or len(active) < plan.survivors:
        raise ValueError(f"{len(active)} owners alive (this one among them?); the sum must "
                         f"hold {plan.survivors}")


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


def run_secure_stage(msg: Message, context: Context, call_next, owner_of) -> Message:
    """Flower's ``secaggplus_mod`` around ``call_next``, gated by the owner's checks.

    ``owner_of()`` gives the :class:`SecureOwner` (raising when the proposal has no
    distributed noise, or the owner's policy does not take part). Every stage is checked; each setup
    allows one collect and one unmask, in that order. Only in a checked collect stage,
    inside Flower's mod, may the owner compute a share (:data:`SESSION`, holding the
    session as Flower's own saved state records it).
    """
    if not secagg_masks.installed():  # Flower's own generator: 32-bit mask seeds
        raise ValueError("SecAgg+ masks would not come from the full key")
    if msg.metadata.message_type != MessageType.TRAIN:  # Flower's mod would pass it through
        raise ValueError(f"a secure sum's message of type {msg.metadata.message_type!r}")
    configs = msg.content.config_records[RECORD_KEY_CONFIGS]
    stage = configs.get(Key.STAGE)
    owner = owner_of()
    plan = owner.plan
    gate = dict(context.state.config_records.get(GATE_RECORD, {}))
    session = None
    if stage != Stage.SETUP and gate.get("proposal") != owner.proposal:
        # Flower carries a node's state into a new run of its series with a new run
        # config: a session set up under one proposal must not carry another's share.
        raise ValueError("this SecAgg+ session was set up under another proposal")
    if stage == Stage.SETUP:
        check_setup(configs, plan)
        gate = {"setup": False}  # until Flower's mod has taken this setup
    elif stage == Stage.SHARE_KEYS:
        if not gate.get("setup"):
            raise ValueError("share keys without a setup this owner accepted")
        check_keys(configs, msg.content.config_records.get(KEY_PROOFS), owner)
    elif stage == Stage.COLLECT_MASKED_VECTORS:
        if not gate.get("setup") or gate.get("collected", True):
            raise ValueError("a collect stage without a fresh setup")
        check_collect(configs, context, plan)
        gate["collected"] = True  # before the owner trains: one collect per setup
        state = _flower_state(context)
        session = {"secagg_participants": state.sample_num, "secagg_threshold": state.threshold,
                   "secagg_session": session_id(state.pk1, state.pk2),
                   "proposal": owner.proposal}
    elif stage == Stage.UNMASK:
        if not gate.get("collected") or gate.get("unmasked"):
            raise ValueError("an unmask stage without a collect, or a second one")
        check_unmask(configs, context, plan)
        gate["unmasked"] = True
    else:
        raise ValueError(f"unknown SecAgg+ stage {stage!r}")
    context.state.config_records[GATE_RECORD] = ConfigRecord(gate)

    def inside(inner: Message, ctxt: Context) -> Message:
        if session is None:  # only a checked collect stage trains
            raise ValueError("training asked outside a secure sum's collect stage")
        token = SESSION.set(session)
        try:
            return call_next(inner, ctxt)
        finally:
            SESSION.reset(token)

    try:
        reply = secaggplus_mod(msg, context, inside)
    except Declined as declined:
        return declined_reply(msg, declined.privacy)
    if stage == Stage.SETUP:  # Flower's mod took it: its session is the one now checked
        context.state.config_records[GATE_RECORD] = ConfigRecord(
            {"setup": True, "collected": False, "proposal": owner.proposal})
        reply.content.config_records[KEY_PROOF] = key_proof(
            owner, msg.metadata.dst_node_id, reply.content.config_records[RECORD_KEY_CONFIGS])
    return reply

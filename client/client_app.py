"""The Flower ClientApp of one data owner: Message in, weights and a privacy event out.

The owner decides its privacy. Its policy comes from its own ``node_config``
(:class:`privacy.policy.OwnerPolicy`); the run config is the coordinator's proposal,
validated with the same rules as everywhere else and then clamped to the policy
or refused. The owner's own hash-chained ledger is the source of truth for its
spend: every call rebuilds the accountant history from it under a file lock, so
restarts, new runs and concurrent messages can never reset or double-spend a
budget (P3, P4, P10), and a broken ledger stops the owner (fail closed).

What leaves the owner: the DP-trained weights, its privacy event (public
mechanism parameters) and a status with a reason from a fixed vocabulary, the
event being the owner's ledger line exactly as written and signed with the
owner's key (so the coordinator can embed it but not alter it). No record count,
no loss under DP, no data value; the details of a failure stay in the owner's
own log.
"""

from __future__ import annotations

import json
import math
from contextvars import ContextVar
from dataclasses import dataclass

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters
from flwr.common.logger import log
from flwr.compat.common.recorddict_compat import fitres_to_recorddict
from opacus.optimizers.optimizer import _generate_noise

from client.dataset import (
    LabelledData,
    load_owner_file,
    load_partition,
    partition_identity,
    partition_pin,
    with_canaries,
)
from client.dp_training import entropy_generator, train_nonprivate, train_private
from client.gan_training import train_nonprivate_gan, train_private_gan
from client.secure_share import (
    SESSION,
    Declined,
    SecureOwner,
    is_secure_sum,
    noisy_share,
    run_secure_stage,
)
from genai_models import build_model, resolve
from genai_models.cgan import ConditionalGAN
from genai_models.training_by_sampling import Conditions
from privacy.accountant import (
    History,
    calibrate_noise,
    epsilon_of,
    rdp_epsilon_floor,
    steps_that_fit,
)
from privacy.atomic import write_text
from privacy.distributed_noise import NoiseTooSmall, SecureSumPlan, plan_for, public_noise
from privacy.experiment import COUNTS_COST, ConfigError, ExperimentConfig, proposal_digest
from privacy.ledger import (
    EXHAUSTED,
    NONPRIVATE,
    REFUSAL,
    Ledger,
    LedgerBroken,
    canonical,
    history_of,
    locked,
)
from privacy.owner_incidents import STOPPED, note_p6_breach, stop, stop_file
from privacy.policy import OwnerPolicy
from privacy.signing import Signer, SigningKeyError, key_id, load_owner_keys, public_text

app = ClientApp()

WARNING = 30  # logging.WARNING, for Flower's logger
# One reason for every failure, whatever its cause: which exception a data file raises
# can say something about the data. The details go to the owner's own log only.
FAILED = "training failed on the owner (the details are in its own log)"
# The public range of a global model's weights an owner trains on: crafted weights far
# outside it could turn one record's gradient into inf and the reply into a detector.
WEIGHT_BOUND = 1e4
MAX_REASON = 300  # characters of a refusal reason written to the ledger
RECORDS_READ: ContextVar[bool] = ContextVar("records_read", default=False)
"""Whether this request has begun reading the owner's records: a failure after that
stops the owner (privacy.owner_incidents), one before cannot depend on them."""
# Flower's legacy layout of a secure sum's collect stage (flwr.compat's FitIns/FitRes).
FITINS_CONFIG, FITINS_ARRAYS = "fitins.config", "fitins.parameters"


def _deployed(context: Context) -> tuple[dict, dict]:
    """A deployed owner's proposal and policy: Flower's run_config and node_config."""
    return dict(context.run_config), dict(context.node_config)


def secure_sum_gate(configs=_deployed):
    """A mod: a SecAgg+ secure sum's messages go through Flower's mod, after the owner's checks.

    ``configs(context)`` gives ``(run_config, node_config)`` (a simulation passes each
    owner's own).
    """
    def gate(msg: Message, context: Context, call_next) -> Message:
        if not is_secure_sum(msg):
            return call_next(msg, context)
        run_config, node_config = configs(context)
        return run_secure_stage(msg, context, call_next,
                                lambda: _secure_owner(run_config, node_config, context.node_id))
    return gate


@app.train(mods=[secure_sum_gate()])
def train(msg: Message, context: Context) -> Message:
    """Entry point for Flower: proposal from ``run_config``, policy from ``node_config``."""
    return handle_train(msg, context, *_deployed(context))


def handle_train(msg: Message, context: Context, run_config: dict, node_config: dict) -> Message:
    """One train message: a plain round, or the collect stage of a secure sum."""
    if FITINS_CONFIG not in msg.content.config_records:
        return train_round(msg, context, run_config, node_config)
    # Flower's legacy layout in and out (what SecAgg+'s workflow and mod speak).
    fitins = msg.content
    msg.content = RecordDict({"config": fitins.config_records[FITINS_CONFIG],
                              "arrays": fitins.array_records[FITINS_ARRAYS]})
    # Secure only inside Flower's mod after the gate's checks; a message merely shaped
    # like a secure sum's is a plain one, and a distributed proposal refuses it.
    secure = SESSION.get() is not None
    reply = train_round(msg, context, run_config, node_config, secure=secure)
    if not secure:  # refused (or, under local noise, a plain round): nothing to mask
        return reply
    privacy = dict(reply.content["privacy"])
    if "arrays" not in reply.content:
        raise Declined(privacy)
    shares = [a.numpy() for a in reply.content["arrays"].values()]
    fitres = FitRes(status=Status(Code.OK, "trained"), parameters=ndarrays_to_parameters(shares),
                    num_examples=1, metrics=privacy)
    return Message(content=fitres_to_recorddict(fitres, keep_input=True), reply_to=msg)


class Replayed(Exception):
    """The owner already trained in this round of this run: it re-sends that signed spend."""

    def __init__(self, entry: dict):
        super().__init__(f"already trained in round {entry['round']} of this run")
        self.entry = entry


class Refusal(Exception):
    """The owner declines this request; the message is public and goes to its ledger."""

    def __init__(self, reason: str, status: str = "refused"):
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Request:
    """One train message, read: who asks, in which run and round, for what."""

    run_id: int
    server_round: int
    proposal: ExperimentConfig
    digest: str
    """sha256 of the proposal, signed into every line of this request (see proposal_digest)."""
    secure: bool = False
    """Whether the reply goes into a SecAgg+ secure sum (masked) rather than in the clear."""


def train_round(msg: Message, context: Context, run_config: dict, node_config: dict,
                secure: bool = False) -> Message:
    """Train the global model locally for one round, within this owner's policy.

    ``secure``: the message is a secure sum's (its reply is masked by SecAgg+); only
    then, and only under a distributed-noise proposal, does the owner send a noise share.
    """
    try:
        policy = OwnerPolicy.from_node_config(node_config, context.node_id)
    except ConfigError as err:
        log(WARNING, "fedsynth owner: cannot train: %s", err)
        return _reply(msg, None, None, {"status": "failed",
                                        "reason": "the owner's node_config is invalid"})
    cid = policy.client_id
    server_round = _server_round(msg)
    if server_round is None:  # nothing a ledger line could name: refused, not recorded
        return _reply(msg, None, None, {"status": "refused", "client_id": cid,
                                        "reason": "the message has no valid server-round"})
    run_id = _run_id(msg, context)
    try:
        with locked(policy.ledger_path, policy.signing_key) as ledger:
            try:
                proposal = ExperimentConfig.parse(run_config, "run_config")
            except ConfigError as err:
                return _refuse(msg, ledger, cid, run_id, server_round,
                               Refusal(f"the proposal is invalid: {err}"))
            request = Request(run_id, server_round, proposal, proposal_digest(proposal), secure)
            RECORDS_READ.set(False)
            try:
                return _train_within_policy(msg, ledger, policy, request)
            except Replayed as replayed:
                log(WARNING, "fedsynth owner %s: %s", cid, replayed)
                return _reply(msg, None, None, _signed("replayed", replayed.entry, ledger))
            except Refusal as refusal:
                return _refuse(msg, ledger, cid, request.run_id, server_round, refusal,
                               request.digest)
            except Exception as err:  # the details stay here: they may name data values
                log(WARNING, "fedsynth owner %s: training failed: %r", cid, err)
                if RECORDS_READ.get():  # asked again, it could fail again: an oracle
                    log(WARNING, "fedsynth owner %s: it stops until its operator deletes %s",
                        cid, stop_file(policy.ledger_path))
                    stop(policy.ledger_path, request.run_id, server_round, repr(err))
                return _refuse(msg, ledger, cid, request.run_id, server_round,
                               Refusal(FAILED, status="failed"), request.digest)
    except SigningKeyError as err:
        log(WARNING, "fedsynth owner %s: cannot sign: %s", cid, err)
        return _reply(msg, None, None, {"status": "failed", "client_id": cid,
                                        "reason": "the owner's signing key is unreadable"})
    except LedgerBroken as err:
        log(WARNING, "fedsynth owner %s: refusing to train: %s", cid, err)
        return _reply(msg, None, None, {"status": "failed", "client_id": cid,
                                        "reason": "the owner's ledger is unreadable or broken"})
    except Exception as err:
        log(WARNING, "fedsynth owner %s: cannot reach its ledger: %r", cid, err)
        return _reply(msg, None, None, {"status": "failed", "client_id": cid,
                                        "reason": "the owner's ledger is unreadable or broken"})


def _server_round(msg: Message) -> int | None:
    """The message's round, when it is an integer in 1..10^9; None otherwise."""
    try:
        value = msg.content["config"]["server-round"]
    except (KeyError, TypeError):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10**9:
        return None
    return value


def _run_id(msg: Message, context: Context) -> int:
    """The run the message belongs to: fedsynth's run id when the message names one.

    A run resumed after a crash is a new Flower run with the old fedsynth run id, so
    the owner re-sends (never re-spends) what it already trained in it. A coordinator
    choosing the id gains nothing: a fresh id is what a fresh ``flwr run`` gets anyway,
    and the owner's lifetime budget covers every run.
    """
    try:
        value = msg.content["config"]["run-id"]
    except (KeyError, TypeError):
        return context.run_id
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        return context.run_id
    return value


def _global_weights_in_range(model: torch.nn.Module) -> bool:
    return all(torch.isfinite(t).all() and t.abs().max() <= WEIGHT_BOUND
               for t in model.state_dict().values() if t.numel())


def _refuse(msg: Message, ledger: Ledger, cid: int, run_id: int, server_round: int,
            refusal: Refusal, digest: str | None = None) -> Message:
    reason = str(refusal)
    if len(reason) > MAX_REASON:  # a coordinator's value quoted back must not grow the ledger
        reason = reason[:MAX_REASON] + "…"
    log(WARNING, "fedsynth owner %s: round %s: %s", cid, server_round, reason)
    event = {"round": server_round, "client_id": cid, "run_id": run_id, "mechanism": REFUSAL,
             "reason": reason}
    entry = ledger.append(event if digest is None else event | {"proposal": digest})
    return _reply(msg, None, None, _signed(refusal.status, entry, ledger))


def _signed(status: str, entry: dict, ledger: Ledger) -> dict:
    """A reply's privacy record: the status, the owner's signed ledger line verbatim, its key."""
    public = public_text(ledger.signer.key.public_key()).decode("ascii").strip()
    return {"status": status, "client_id": entry["client_id"], "entry": canonical(entry),
            "public_key": public}


def _spec_of(policy: OwnerPolicy, proposal: ExperimentConfig):
    """The public data spec this owner trains with (its own schema, or a built-in one)."""
    if policy.partition_id is None:
        return resolve("csv", policy.schema_path)[0] if policy.schema_path else \
            resolve("digits")[0]
    return resolve(proposal.dataset, policy.schema_path)[0]


def _plan(policy: OwnerPolicy, p: ExperimentConfig) -> SecureSumPlan:
    """The public plan of a distributed-noise proposal for this owner's model."""
    return plan_for(p, _spec_of(policy, p))


def _secure_owner(run_config: dict, node_config: dict, node_id: int) -> SecureOwner:
    """What the gate checks a secure sum against (raises on a bad proposal or policy)."""
    policy = OwnerPolicy.from_node_config(node_config, node_id)
    proposal = ExperimentConfig.parse(run_config, "run_config")
    if not proposal.distributed:
        raise ValueError("a secure sum was asked under a proposal without distributed noise")
    _check_distributed_policy(policy, proposal)
    registry = load_owner_keys(policy.owner_keys)
    if len({key_id(k) for k in registry.values()}) != len(registry):
        raise Refusal("this owner's owner-keys holds one key under two owner ids; one party "
                      "would count twice")
    return SecureOwner(_plan(policy, proposal), policy.client_id,
                       Signer.load_or_create(policy.signing_key), registry,
                       proposal_digest(proposal))


def _check_distributed_policy(policy: OwnerPolicy, p: ExperimentConfig) -> None:
    """An owner takes part in distributed noise only when its own policy says so."""
    if not policy.allow_distributed:
        raise Refusal("distributed noise was proposed; this owner's policy adds its full "
                      "noise itself (allow-distributed is off)")
    if p.colluders < policy.max_colluders_assumed:
        raise Refusal(f"the proposal tolerates {p.colluders} colluding owners; this owner "
                      f"insists on {policy.max_colluders_assumed}")
    if not policy.owner_keys:
        raise Refusal("distributed noise was proposed; this owner's node_config names no "
                      "owner-keys (it could not tell owners from invented participants)")


def _data_spec(policy: OwnerPolicy, proposal: ExperimentConfig, ledger: Ledger):
    """The spec and codec of what the owner will read, from its policy and the proposal.

    Every refusal about data is decided here, before a record is read: none of them,
    nor the time it takes, depends on the records. The schema comes from the owner's
    node config (or ships with a built-in dataset), never from the run config. A table
    owner reads its file with its own schema, whatever dataset the proposal names (a
    built-in schema applied to its rows would make success or failure a free answer
    about them); images are read as the public digits spec.
    """
    if policy.partition_id is None:
        if not policy.data_path:
            raise Refusal("this owner's node_config names no data-path")
        holds_table = bool(policy.schema_path)
        if holds_table == (proposal.dataset == "digits"):
            holds = "a table (schema-path)" if holds_table else "images (no schema-path)"
            raise Refusal(f"this owner holds {holds}; the proposal asks for dataset "
                          f"{proposal.dataset!r}")
        return resolve("csv", policy.schema_path) if holds_table else resolve("digits")
    if proposal.dataset == "csv" and not policy.schema_path:
        raise Refusal("this owner's node_config names no schema-path for its CSV")
    _hold_to_partition(ledger, partition_identity(proposal, policy.partition_id,
                                                  policy.num_partitions, policy.data_path))
    return resolve(proposal.dataset, policy.schema_path)


def _records(policy: OwnerPolicy, proposal: ExperimentConfig, spec, codec) -> LabelledData:
    """The owner's records: its own file, or (a simulated owner) its partition.

    Read only on the paths that spend (or train without DP), after every check that
    needs no record, and followed by the P6 note in the owner's own log.
    """
    RECORDS_READ.set(True)
    if policy.partition_id is None:
        data = load_owner_file(policy.data_path, spec, codec)
    else:
        data = load_partition(
            proposal.dataset, policy.partition_id, policy.num_partitions,
            scheme=proposal.partition, alpha=proposal.alpha, holdout=proposal.holdout,
            seed=proposal.seed, data_path=policy.data_path, schema_path=policy.schema_path,
        )
        if proposal.canaries and policy.partition_id == 0:  # the canary audit's owner
            data = with_canaries(data, spec, proposal.canaries, proposal.seed)
    # P6 was judged when the policy was read, on the records the owner declares
    # (max-records), so that nothing the coordinator sees depends on the count. An owner
    # holding more than declared, past 1/max-delta, breaks P6 (not its DP guarantee,
    # which the ledger states): only its log and a note beside its ledger say so.
    if proposal.private and policy.max_delta * len(data) >= 1:
        note_p6_breach(policy.ledger_path, len(data), policy.max_records, policy.max_delta)
        log(WARNING, "fedsynth owner %s: P6 does not hold: it holds %d records, more than "
            "its max-records %d, and its max-delta %g is not below 1/%d; declare "
            "max-records >= %d and a max-delta below 1/max-records in its node_config",
            policy.client_id, len(data), policy.max_records, policy.max_delta, len(data),
            len(data))
    return data


def _hold_to_partition(ledger: Ledger, identity: dict) -> None:
    """A simulated owner's ledger covers one partition of the data, fixed at its first use.

    Another split (seed, holdout, alpha, ...) would put other records in this
    partition and their spend in a ledger that never saw them: refused.
    """
    path = partition_pin(ledger.path)
    if not path.exists():
        write_text(path, json.dumps(identity, sort_keys=True) + "\n")
        return
    if json.loads(path.read_text("utf-8")) != identity:
        raise Refusal("this simulated owner's ledger belongs to another split of the data "
                      f"(see {path.name}); a new split needs new ledgers")


def _history(spends: list[dict]) -> History:
    return [h for e in spends for h in history_of(e)]


def _conditions(model: torch.nn.Module) -> Conditions:
    """The columns whose category counts the owner releases: the GAN's conditioned ones."""
    return model.conditions if isinstance(model, ConditionalGAN) else Conditions()


def _frequencies(msg: Message) -> list | None:
    """The round's training-by-sampling frequencies, or None when the round sends none."""
    try:
        values = msg.content["config"]["condition-frequencies"]
    except (KeyError, TypeError):
        return None
    return values if isinstance(values, list) else [values]


def _counts(data: LabelledData, num_classes: int, conditions: Conditions) -> dict:
    """The owner's exact class counts, and each conditioned column's category counts.

    The category counts feed the GAN's training-by-sampling; a record whose category
    is missing counts in none.
    """
    out = {"class_counts": torch.bincount(torch.as_tensor(data.y, dtype=torch.long),
                                          minlength=num_classes).tolist()}
    if conditions.blocks:
        x, cats = torch.as_tensor(data.x), []
        for start, width in conditions.blocks:
            block = x[:, start:start + width]
            known = block.sum(1) > 0.5
            cats += torch.bincount(block[known].argmax(1), minlength=width).tolist()
        out["category_counts"] = cats
    return out


def _noisy_counts(data: LabelledData, num_classes: int, conditions: Conditions,
                  noise: float) -> dict:
    """The owner's counts (see ``_counts``) with Gaussian noise from OS entropy.

    ``noise`` is the noise multiplier: one record moves one count in each block by one,
    so each count's std is ``noise`` times the square root of the blocks. Drawn as
    Opacus draws DP-SGD noise in secure mode (a sum of four Gaussians), the
    floating-point defence against reading a count back from the noise's low bits.
    """
    exact = _counts(data, num_classes, conditions)
    std = conditions.counts_std(noise)
    out = {"class_noise": noise}
    for key, values in exact.items():
        values = torch.as_tensor(values, dtype=torch.float64)
        noisy = values + _generate_noise(std=std, reference=values,
                                         generator=entropy_generator(), secure_mode=True)
        out[key] = [round(float(c), 3) for c in noisy]
    return out


def _train_within_policy(msg: Message, ledger: Ledger, policy: OwnerPolicy,
                         request: Request) -> Message:
    p, cid = request.proposal, policy.client_id
    if p.private and any(e["mechanism"] == NONPRIVATE for e in ledger.entries):
        raise Refusal("this owner's data was trained on without DP before; no lifetime "
                      "budget can be honoured for it")
    mine = [e for e in ledger.entries if e["mechanism"] == "dp-sgd"]
    this_run = [e for e in mine if e["run_id"] == request.run_id]
    done = next((e for e in this_run if e["round"] == request.server_round), None)
    if done is not None:  # a resumed coordinator asks again: no second spend, the first re-sent
        raise Replayed(done)
    if stop_file(policy.ledger_path).exists():  # asked again, a failure would be an oracle
        raise Refusal(STOPPED, status="failed")
    if not p.private and not policy.allow_nonprivate:
        raise Refusal("epsilon=inf (no DP) was proposed, and this owner's policy does not "
                      "allow non-private training")
    if p.private and p.delta > policy.max_delta:
        raise Refusal(f"delta={p.delta:g} was proposed; this owner accepts at most "
                      f"{policy.max_delta:g}")
    if p.distributed:
        _check_distributed_policy(policy, p)
    if p.distributed != request.secure:  # a share sent in the clear would carry a fraction
        # of the noise; a secure sum of full local training is no mechanism fedsynth accounts
        raise Refusal("distributed noise is sent only into a SecAgg+ secure sum, and a "
                      "secure sum only carries distributed noise" if p.distributed else
                      "a secure sum was asked under a proposal without distributed noise")
    spec, codec = _data_spec(policy, p, ledger)
    model = build_model(p.model, spec, hidden_dim=p.hidden_dim, latent_dim=p.latent_dim)
    _load_global(model, msg.content["arrays"], positional=request.secure)
    if not _global_weights_in_range(model):
        raise Refusal(f"the global model's weights are not finite or outside ±{WEIGHT_BOUND:g}")
    # Public randomness only (the VAE's reparameterisation, the GAN's fake labels);
    # DP noise and sampling draw from OS entropy inside the trainers.
    torch.manual_seed(p.seed * 1_000_003 + request.server_round * 1009 + cid)
    gan = isinstance(model, ConditionalGAN)
    if gan and not p.distributed:  # public: the coordinator's sum of the owners' DP counts
        try:
            model.condition_on(_frequencies(msg))
        except ValueError as err:
            raise Refusal(f"the round's condition-frequencies are invalid: {err}") from None

    if not p.private:
        data = _records(policy, p, spec, codec)
        outcome = (train_nonprivate_gan if gan else train_nonprivate)(
            model, data, epochs=p.local_epochs, batch_size=p.batch_size,
            learning_rate=p.learning_rate, max_norm=p.max_grad_norm, optimizer=p.optimizer,
        )
        counted = any(e["mechanism"] == NONPRIVATE and e["run_id"] == request.run_id
                      for e in ledger.entries)
        counts = {} if not p.releases_counts or counted else _counts(data, spec.num_classes,
                                                          _conditions(model))
        entry = ledger.append({"round": request.server_round, "client_id": cid,
                               "run_id": request.run_id, "proposal": request.digest,
                               "mechanism": NONPRIVATE, **counts,
                               "reason": "trained without DP (epsilon=inf proposed; the "
                                         "owner's policy allows it): no DP guarantee holds "
                                         "for this data"})
        loss = outcome.mean_loss if math.isfinite(outcome.mean_loss) else 0.0
        return _reply(msg, model, {"train-loss": loss}, _signed("nonprivate", entry, ledger))

    if p.distributed:
        return _send_share(msg, ledger, policy, request, model, spec, codec)
    budget, delta, q, acc = policy.epsilon_budget, p.delta, p.sample_rate, p.accountant
    # Once per run, before its first step, the owner releases its noisy class counts
    # (and a table GAN's category counts; not under --balance or owner-level DP): one
    # Gaussian step of sensitivity 1 (√(1+k) with k columns' category counts, its std
    # scaled to match), planned and charged with the run's DP-SGD steps.
    # They are skipped when they would cost the training too much: more than COUNTS_COST
    # extra DP-SGD noise (small budgets), a choice made from budgets alone, not data.
    lifetime, run = _history(mine), _history(this_run)
    if this_run:
        counts_step, sigma = [], this_run[0]["noise_multiplier"]
    else:
        sigma = _calibrate(lifetime, run, policy, p)
        counts_step = [(p.class_noise, 1.0, 1)] if p.releases_counts else []
        with_counts = _calibrate(lifetime + counts_step, run + counts_step, policy, p) \
            if counts_step else 0.0
        if counts_step and with_counts and with_counts <= sigma * (1 + COUNTS_COST):
            sigma, lifetime, run = with_counts, lifetime + counts_step, run + counts_step
        else:
            counts_step = []

    def fitting(wanted: int) -> int:
        # Within the owner's lifetime budget, and within what the coordinator asked
        # this run to spend: the smaller of the two.
        return min(
            steps_that_fit(lifetime, noise_multiplier=sigma, sample_rate=q, wanted=wanted,
                           budget=budget, delta=delta, accountant=acc),
            steps_that_fit(run, noise_multiplier=sigma, sample_rate=q, wanted=wanted,
                           budget=p.epsilon, delta=delta, accountant=acc),
        )

    steps = fitting(p.steps_per_round) if sigma else 0
    if steps == 0:
        raise Refusal(EXHAUSTED, status="exhausted")
    data = _records(policy, p, spec, codec)
    outcome = (train_private_gan if gan else train_private)(
        model, data, steps=steps, noise_multiplier=sigma, sample_rate=q,
        max_grad_norm=p.max_grad_norm, normaliser=p.batch_size,
        learning_rate=p.learning_rate, accountant=acc, optimizer=p.optimizer,
    )
    new = (sigma, q, outcome.steps)
    lifetime.append(new)
    run.append(new)
    # Exhausted when not even one more step of this kind would fit; signed, so that a run
    # that stops early can prove why.
    exhausted = not fitting(1)
    counts = _noisy_counts(data, spec.num_classes, _conditions(model), p.class_noise) \
        if counts_step else {}
    event = ledger.append({
        "round": request.server_round,
        "client_id": cid,
        "run_id": request.run_id,
        "proposal": request.digest,
        "mechanism": "dp-sgd",
        "noise_multiplier": sigma,
        "sample_rate": q,
        "steps": outcome.steps,
        "max_grad_norm": p.max_grad_norm,
        "delta": delta,
        "accountant": acc,
        "epsilon": epsilon_of(run, accountant=acc, delta=delta),
        "lifetime_epsilon": epsilon_of(lifetime, accountant=acc, delta=delta),
        "epsilon_budget": budget,
        "exhausted": exhausted,
        **counts,
    })
    status = "trained-exhausted" if exhausted else "trained"
    return _reply(msg, model, {}, _signed(status, event, ledger))


def _send_share(msg: Message, ledger: Ledger, policy: OwnerPolicy, request: Request,
                model: torch.nn.Module, spec, codec) -> Message:
    """One round of distributed noise: a noisy share of one DP-SGD step, for the secure sum.

    The noise is the proposal's public one (every owner adds the same share; the
    guarantee counts on the others' shares), and the owner's own ledger is charged one
    step of it (the class counts too, in its first round) whether or not the round is
    released: the share left the owner.
    """
    p, cid = request.proposal, policy.client_id
    try:
        plan = _plan(policy, p)
        sigma, with_counts = public_noise(p)
    except (NoiseTooSmall, ValueError) as err:
        raise Refusal(f"no distributed noise fits the proposal: {err}") from None
    session = dict(SESSION.get() or {})
    if session.pop("proposal", None) != request.digest:
        raise Refusal("the SecAgg+ session was set up under another proposal")
    sid = session.get("secagg_session")
    if sid is None or any(e.get("secagg_session") == sid for e in ledger.entries):
        # Two shares under one session's masks would give away their difference.
        raise Refusal("this SecAgg+ session already carried a share of this owner")
    mine = [e for e in ledger.entries if e["mechanism"] == "dp-sgd"]
    this_run = [e for e in mine if e["run_id"] == request.run_id]
    counts_step = [(p.class_noise, 1.0, 1)] if with_counts and not this_run else []
    lifetime, run = _history(mine) + counts_step, _history(this_run) + counts_step
    step = [(sigma, p.sample_rate, 1)]
    acc, delta, budget = p.accountant, p.delta, policy.epsilon_budget
    if epsilon_of(lifetime + step, accountant=acc, delta=delta) > budget or \
            epsilon_of(run + step, accountant=acc, delta=delta) > p.epsilon * (1 + 1e-9):
        raise Refusal(EXHAUSTED, status="exhausted")
    data = _records(policy, p, spec, codec)
    shares = noisy_share(model, data, plan, sample_rate=p.sample_rate,
                         generator=entropy_generator())
    lifetime, run = lifetime + step, run + step
    exhausted = epsilon_of(lifetime + step, accountant=acc, delta=delta) > budget or \
        epsilon_of(run + step, accountant=acc, delta=delta) > p.epsilon * (1 + 1e-9)
    counts = _noisy_counts(data, spec.num_classes, _conditions(model), p.class_noise) \
        if counts_step else {}
    arrays = ArrayRecord(shares)  # built before the spend is written: nothing fails after it
    event = ledger.append({
        "round": request.server_round, "client_id": cid, "run_id": request.run_id,
        "proposal": request.digest, "mechanism": "dp-sgd", "noise_multiplier": sigma,
        "sample_rate": p.sample_rate, "steps": 1, "max_grad_norm": p.max_grad_norm,
        "delta": delta, "accountant": acc,
        "epsilon": epsilon_of(run, accountant=acc, delta=delta),
        "lifetime_epsilon": epsilon_of(lifetime, accountant=acc, delta=delta),
        "epsilon_budget": budget, "exhausted": exhausted, **plan.ledger_fields(),
        **session, **counts,
    })
    status = "trained-exhausted" if exhausted else "trained"
    content = RecordDict({"privacy": ConfigRecord(_signed(status, event, ledger)),
                          "arrays": arrays})
    return Message(content=content, reply_to=msg)


def _load_global(model: torch.nn.Module, arrays: ArrayRecord, positional: bool) -> None:
    """Load the global weights: by name, or (a secure sum's legacy layout) by position."""
    if not positional:
        model.load_state_dict(arrays.to_torch_state_dict())
        return
    names = list(model.state_dict())
    values = [torch.from_numpy(a.numpy()) for a in arrays.values()]
    if len(values) != len(names):
        raise Refusal(f"the global model has {len(values)} arrays; this model has "
                      f"{len(names)}")
    model.load_state_dict(dict(zip(names, values, strict=True)))


def _calibrate(lifetime: History, run: History, policy: OwnerPolicy,
               p: ExperimentConfig) -> float:
    """The noise multiplier for this run's planned steps, or 0 when too little budget is left.

    The noise is the larger of two: after what the run already holds (``run``: its
    class counts) the planned steps spend at most the proposed epsilon, and after the
    owner's whole history they reach at most its lifetime budget. The budget itself
    is enforced step by step after.
    """
    spent = epsilon_of(lifetime, accountant=p.accountant, delta=p.delta)
    left = policy.epsilon_budget - spent
    if left <= 0 or (p.accountant == "rdp" and left <= 2 * rdp_epsilon_floor(p.delta)):
        return 0.0
    plan = {"delta": p.delta, "sample_rate": p.sample_rate,
            "steps": p.rounds * p.steps_per_round, "accountant": p.accountant}
    try:
        return max(calibrate_noise(epsilon=p.epsilon, history=run, **plan),
                   calibrate_noise(epsilon=policy.epsilon_budget, history=lifetime, **plan))
    except ValueError:  # too little left for any noise the calibration tries
        return 0.0


def _reply(msg: Message, model: torch.nn.Module | None, metrics: dict | None,
           privacy: dict) -> Message:
    """The reply: weights (when it trained), metrics, and the status plus privacy event."""
    content = RecordDict({"privacy": ConfigRecord(privacy)})
    if model is not None:
        content["arrays"] = ArrayRecord(model.state_dict())
        # Uniform weighting: the exact record count is private and never leaves.
        content["metrics"] = MetricRecord({"unit-weight": 1, **(metrics or {})})
    return Message(content=content, reply_to=msg)

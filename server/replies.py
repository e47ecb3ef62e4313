"""Judging one owner's reply: counted, recorded or rejected, and the run-ledger line that says so.

Every reply becomes exactly one line of the run's ledger. When it carries an
authentic signed event of this owner for this run and round, the line embeds it
verbatim (``owner_entry``) with its fields copied beside it, whatever the verdict:
the owner spent what it signed, and the audit matches it against the owner's own
ledger. Anything else (a node error, a malformed or forged event, a replay) is a
``mechanism: none`` line with the reason it was rejected. Nothing in a reply's
content can raise out of :meth:`ReplyJudge.judge`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_ssh_public_key
from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

from genai_models import resolve
from privacy.accountant import calibrate_noise
from privacy.distributed_noise import SecureSumPlan
from privacy.experiment import ExperimentConfig, proposal_digest
from privacy.ledger import (
    NONPRIVATE,
    OWNER_CHAIN_FIELDS,
    OWNER_FIELDS,
    REFUSAL,
    LedgerBroken,
    check_entry,
    entry_hash,
)
from privacy.signing import key_id, verify
from privacy.update_bound import Recipe

STATUSES = ("trained", "trained-exhausted", "exhausted", "refused", "failed", "nonprivate",
            "replayed")
# "replayed": the owner already spent in this round of this run (a resumed coordinator
# asked again) and re-sends that signed spend, without weights.
MECHANISM_OF = {"trained": "dp-sgd", "trained-exhausted": "dp-sgd", "nonprivate": NONPRIVATE,
                "exhausted": REFUSAL, "refused": REFUSAL, "failed": REFUSAL,
                "replayed": "dp-sgd"}
UPDATE_STATUSES = ("trained", "trained-exhausted", "nonprivate")
MAX_ENTRY_CHARS = 16_384
MAX_REASON_CHARS = 300
COUNT_SIGMAS = 6.0  # a noisy count below -6σ is no honest count (probability ~1e-9)


class Rejected(Exception):
    """A reply that cannot count; the message is the ledger's ``rejection``."""


@dataclass
class Judgement:
    """One reply, judged."""

    line: dict
    """The run-ledger line (without ``prev_hash``/``hash``)."""
    status: str | None
    """The owner's status, when the reply had a valid one."""
    entry: dict | None = None
    """The owner's authentic signed event, when it sent one."""

    @property
    def counts(self) -> bool:
        """Whether the reply's weights go into the aggregate."""
        return self.line["verdict"] == "accepted"

    @property
    def client_id(self) -> int | None:
        """The owner the line is about (None when no one could be named)."""
        return self.line.get("client_id")


class ReplyJudge:
    """Holds what a run has seen (keys, which node speaks for which owner, events) and judges."""

    def __init__(self, settings: ExperimentConfig, run_id: int,
                 owner_keys: dict[int, Ed25519PublicKey] | None,
                 plan: SecureSumPlan | None = None):
        self.settings = settings
        self.plan = plan  # distributed noise: the public plan every share must follow
        self.run_id = run_id
        self.registered = owner_keys is not None
        self.keys: dict[int, Ed25519PublicKey] = dict(owner_keys or {})
        self.node_owner: dict[int, int] = {}
        self.owner_node: dict[int, int] = {}
        self.seen: set[str] = set()
        self.rounds_of: set[tuple[int, int]] = set()
        self.proposal = proposal_digest(settings)
        self.recipe = _recipe(settings) if settings.private else None
        # Honest owners never add less noise than the proposal calibrates to; half of it
        # leaves room for calibration tolerance and refuses the absurd (1e-300 broke the
        # audit's accountants).
        self.noise_floor = 0.5 * self.recipe.proposal_noise if self.recipe else 0.0
        self.num_classes = resolve(settings.dataset, settings.schema_path)[0].num_classes
        self.conditions = settings.conditions()
        """The GAN's conditioned columns, whose category counts come with the class counts."""
        self.counted: set[int] = set()  # owners whose class counts this run holds
        self.key_ids: dict[int, str] = {}  # a resumed run's owners keep their first key

    def judge(self, reply: Message, server_round: int,
              global_arrays: dict[str, torch.Tensor], node: int | None = None,
              masked: bool = False) -> Judgement:
        """The verdict on one reply and its ledger line; never raises on the reply's content.

        ``node`` is the node the reply speaks for (default its source; the SuperLink's
        error reply for a vanished node speaks for that node). ``masked``: the reply's
        weights went into a secure sum (distributed noise); only its event is judged.
        """
        node = int(reply.metadata.src_node_id) if node is None else node
        base = {"round": server_round, "run_id": self.run_id, "node_id": node}
        try:
            return self._judge(reply, server_round, global_arrays, base, masked)
        except Rejected as why:
            return Judgement(_rejected(base, self.node_owner.get(node), str(why)), None)
        except Exception as err:  # whatever a crafted reply triggers, the round goes on
            why = f"the reply cannot be read ({type(err).__name__})"
            return Judgement(_rejected(base, self.node_owner.get(node), why), None)

    def _judge(self, reply: Message, server_round: int, global_arrays: dict[str, torch.Tensor],
               base: dict, masked: bool) -> Judgement:
        node = base["node_id"]
        if reply.has_error():
            raise Rejected(f"the node replied with an error: {_short(reply.error.reason)}")
        record = _privacy_record(reply)
        status = record.get("status")
        if status not in STATUSES:
            raise Rejected(f"unknown status {_short(status)}")
        cid = _owner_id(record.get("client_id"))
        text = record.get("entry")
        if text is None:
            return self._unsigned(base, self._claim(node, cid, pin=False), status, record, reply)
        entry = self._authentic(text, cid, server_round, record)
        self._claim(node, cid)  # only an owner's own signature binds a node to it
        self.seen.add(entry["hash"])
        self.rounds_of.add((cid, server_round))
        line = {**{k: v for k, v in entry.items() if k not in OWNER_CHAIN_FIELDS}, **base,
                "owner_entry": entry}
        try:
            self._check_content(status, entry, reply)
            if status in UPDATE_STATUSES and masked != self.settings.distributed:
                raise Rejected("an update in a secure sum under local noise" if masked else
                               "a distributed-noise update outside the secure sum")
            if status in UPDATE_STATUSES and masked:
                if "class_counts" in entry:
                    self.counted.add(entry["client_id"])
                return Judgement(line | {"verdict": "accepted"}, status, entry)
            if status in UPDATE_STATUSES:
                update = _checked_weights(reply, global_arrays)
                update, bounded = self._bounded(status, entry, update, global_arrays)
        except Rejected as why:
            return Judgement(line | {"verdict": "rejected", "rejection": str(why)}, status, entry)
        except Exception as err:  # the event is authentic: keep it, whatever the rest holds
            why = f"the reply cannot be read ({type(err).__name__})"
            return Judgement(line | {"verdict": "rejected", "rejection": why}, status, entry)
        if status in UPDATE_STATUSES:
            if "class_counts" in entry:
                self.counted.add(entry["client_id"])
            # What the aggregator reads is rebuilt here: only the checked (and bounded)
            # weights and the uniform weight, never the reply's own metrics.
            reply.content = RecordDict({"arrays": ArrayRecord(update),
                                        "metrics": MetricRecord({"unit-weight": 1})})
            return Judgement(line | bounded | {"verdict": "accepted"}, status, entry)
        return Judgement(line | {"verdict": "recorded"}, status, entry)

    def remember(self, entries: list[dict]) -> None:
        """What a resumed run already holds: its signed events are not taken twice."""
        for e in entries:
            if e.get("owner_entry") is not None:
                self.seen.add(e["owner_entry"]["hash"])
                self.rounds_of.add((e["client_id"], e["round"]))
                if "class_counts" in e["owner_entry"] and e["verdict"] == "accepted":
                    self.counted.add(e["client_id"])
                self.key_ids.setdefault(e["client_id"], e["owner_entry"].get("key_id"))

    def _claim(self, node: int, cid: int, pin: bool = True) -> int:
        """The owner a node speaks for: one owner per node and one node per owner, for the run.

        Only a verified signature pins the pair (``pin``): an unsigned claim could
        otherwise lock the real owner out.
        """
        if self.node_owner.get(node, cid) != cid:
            raise Rejected(f"node {node} claims owner {cid} but spoke for owner "
                           f"{self.node_owner[node]} before")
        if self.owner_node.get(cid, node) != node:
            raise Rejected(f"node {node} claims owner {cid}, whom node "
                           f"{self.owner_node[cid]} speaks for")
        if pin:
            self.node_owner[node], self.owner_node[cid] = cid, node
        return cid

    def _unsigned(self, base: dict, cid: int, status: str, record, reply: Message) -> Judgement:
        """An owner that failed before it could reach its ledger: recorded with its reason."""
        if status not in ("refused", "failed") or "arrays" in reply.content:
            raise Rejected(f"status {status} without a signed event")
        reason = record.get("reason")
        if not isinstance(reason, str) or not reason:
            raise Rejected("an unsigned refusal without a reason")
        # Unsigned, so it is attributed to no owner: anyone could have sent it.
        line = {**base, "client_id": None, "mechanism": REFUSAL, "verdict": "recorded",
                "reason": f"{status}, unsigned (claims owner {cid}; not in any owner's "
                          f"ledger): {_short(reason)}"}
        return Judgement(line, status)

    def _authentic(self, text, cid: int, server_round: int, record) -> dict:
        """The owner's signed event, checked for form, signature, run, round and novelty."""
        if not isinstance(text, str) or len(text) > MAX_ENTRY_CHARS:
            raise Rejected("the signed event is not a string of at most "
                           f"{MAX_ENTRY_CHARS} characters")
        try:
            entry = json.loads(text, parse_constant=_no_constant)
            if not isinstance(entry, dict):
                raise ValueError
            check_entry("reply", 1, entry)
        except (ValueError, LedgerBroken) as err:
            raise Rejected(f"the signed event is malformed: {_short(err)}") from None
        alien = sorted(set(entry) - OWNER_FIELDS)
        if alien:
            raise Rejected(f"the signed event carries fields no owner writes: "
                           f"{_short(', '.join(alien))}")
        if entry["client_id"] != cid:
            raise Rejected(f"the event names owner {entry['client_id']}, the reply {cid}")
        if entry.get("proposal", self.proposal) != self.proposal:
            raise Rejected("the event was signed for another proposal than this run's")
        if entry.get("hash") != entry_hash(entry):
            raise Rejected("the event's hash does not match its content")
        self._check_signature(cid, entry, record)
        if entry["run_id"] != self.run_id or entry["round"] != server_round:
            raise Rejected(f"the event is for run {entry['run_id']}, round {entry['round']}; "
                           "this is a replayed or misdirected event")
        if entry["hash"] in self.seen or (cid, server_round) in self.rounds_of:
            raise Rejected(f"a second event from owner {cid} in round {server_round}")
        return entry

    def _check_signature(self, cid: int, entry: dict, record) -> None:
        key = self.keys.get(cid)
        if key is None and self.registered:
            raise Rejected(f"owner {cid} has no registered signing key")
        if key is None:  # trust on first use: the key the owner's first reply names
            try:
                key = load_ssh_public_key(str(record.get("public_key", "")).encode("ascii"))
            except (ValueError, TypeError, UnicodeEncodeError):
                raise Rejected(f"owner {cid} sent no readable public key") from None
            if not isinstance(key, Ed25519PublicKey) or key_id(key) != entry.get("key_id"):
                raise Rejected(f"owner {cid}'s public key does not match its event's key_id")
            if self.key_ids.get(cid, entry.get("key_id")) != entry.get("key_id"):
                raise Rejected(f"owner {cid} signed this run with another key before")
        if not verify(key, entry):
            raise Rejected(f"the event's signature does not verify with owner {cid}'s key")
        self.keys[cid] = key

    def _bounded(self, status: str, entry: dict, update: dict[str, torch.Tensor],
                 global_arrays: dict[str, torch.Tensor]) -> tuple[dict, dict]:
        """The update clipped to what its signed DP steps can move (post-processing).

        Returns the weights to count and the ledger fields that say what was done.
        Non-private rounds have no recipe bound (see :mod:`privacy.update_bound`).
        """
        if self.recipe is None or status == "nonprivate":
            return update, {}
        dimensions = {name: t.numel() for name, t in global_arrays.items()}
        bound = self.recipe.bound(dimensions, entry["steps"], entry["noise_multiplier"])
        if not math.isfinite(bound):
            raise Rejected(f"no finite bound for an update of noise {entry['noise_multiplier']!r}")
        delta = {name: update[name].double() - global_arrays[name].double() for name in update}
        norm = math.sqrt(sum(float((d * d).sum()) for d in delta.values()))
        if not math.isfinite(norm):
            raise Rejected("the update's norm is not finite")
        fields = {"update_norm": _rounded(norm), "update_bound": _rounded(bound),
                  "clipped": norm > bound}
        if norm <= bound:
            return update, fields
        scale = bound / norm
        return ({name: (global_arrays[name].double() + d * scale).to(global_arrays[name].dtype)
                 for name, d in delta.items()}, fields)

    def _check_counts(self, entry: dict, again: bool = False) -> None:
        """Class counts: once per owner and run, of the proposal's noise and class count.

        ``again``: a replay of that one release. No count may lie below what the noise
        could make of a zero.
        """
        if "class_counts" not in entry:
            return
        cid, counts = entry["client_id"], entry["class_counts"]
        if self.settings.balance:
            raise Rejected("class counts released in a run that balances the classes")
        if not self.settings.releases_counts:
            raise Rejected("class counts released under owner-level DP, which they escape")
        if len(counts) != self.num_classes:
            raise Rejected(f"{len(counts)} class counts for {self.num_classes} classes")
        categories = entry.get("category_counts", [])
        if len(categories) != self.conditions.width:
            raise Rejected(f"{len(categories)} category counts for the "
                           f"{self.conditions.width} categories the GAN conditions on")
        noise = entry.get("class_noise", 0.0)
        if entry["mechanism"] == "dp-sgd" and noise != self.settings.class_noise:
            raise Rejected(f"the counts' noise {noise!r} is not the proposal's "
                           f"{self.settings.class_noise!r}")
        std = self.conditions.counts_std(noise)
        if min(counts + categories) < -COUNT_SIGMAS * std:
            raise Rejected(f"a count of {min(counts + categories):.4g} is below what noise "
                           f"of std {std:g} makes of a zero count")
        if cid in self.counted and not again:
            raise Rejected(f"a second class-count release from owner {cid} in this run")

    def _check_content(self, status: str, entry: dict, reply: Message) -> None:
        """Status agrees with event, event with the proposal, no weights where none belong.

        A DP-SGD event is held to the proposal whatever its status (a ``replayed`` one
        included: its figures reach the report and the audit like any other).
        """
        s = self.settings
        if MECHANISM_OF[status] != entry["mechanism"]:
            raise Rejected(f"status {status} with a {entry['mechanism']} event")
        if status in ("trained", "trained-exhausted") and \
                entry.get("exhausted", False) != (status == "trained-exhausted"):
            raise Rejected(f"status {status} disagrees with the event's exhausted flag")
        if entry["mechanism"] == "dp-sgd":
            self._check_dp_sgd(entry)
        self._check_counts(entry, again=status == "replayed")
        if status not in UPDATE_STATUSES:
            if "arrays" in reply.content:
                raise Rejected(f"status {status} carries weights")
            return
        if status == "nonprivate" and s.private:
            raise Rejected("trained without DP in a private run")

    def _check_dp_sgd(self, entry: dict) -> None:
        """A DP-SGD event's public parameters, steps, noise and epsilons against the proposal."""
        s = self.settings
        wanted = {"sample_rate": s.sample_rate, "max_grad_norm": s.max_grad_norm,
                  "delta": s.delta, "accountant": s.accountant}
        for key, value in wanted.items():
            if entry[key] != value:
                raise Rejected(f"the event's {key} {entry[key]!r} is not the proposal's "
                               f"{value!r}")
        if entry["steps"] > s.steps_per_round:
            raise Rejected(f"the event's steps {entry['steps']} exceed the "
                           f"{s.steps_per_round} proposed")
        if entry["noise_multiplier"] < self.noise_floor:
            raise Rejected(f"the event's noise multiplier {entry['noise_multiplier']!r} is "
                           f"below {self.noise_floor:.4g}, half what the proposal calibrates to")
        if entry["epsilon"] > s.epsilon * (1 + 1e-6):
            raise Rejected(f"the event's run epsilon {entry['epsilon']:.4f} exceeds the "
                           f"proposed {s.epsilon:g}")
        if entry["lifetime_epsilon"] > entry["epsilon_budget"] * (1 + 1e-9):
            raise Rejected(f"lifetime epsilon {entry['lifetime_epsilon']:.4f} exceeds the "
                           f"owner's budget {entry['epsilon_budget']}")
        self._check_noise_mode(entry)

    def _check_noise_mode(self, entry: dict) -> None:
        """A distributed-noise event follows the public plan exactly; a local one has none."""
        if self.plan is None:
            if "noise" in entry:
                raise Rejected("a distributed-noise event under a local-noise proposal")
            return
        bad = self.plan.mismatches(entry)
        if bad:
            raise Rejected(f"the event's {', '.join(bad)} differ from the distributed-noise "
                           "plan of the proposal")
        for why in self.plan.session_findings(entry):
            raise Rejected(why)


def _checked_weights(reply: Message,
                     global_arrays: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reply's weights, when they have the global model's names, order, shapes, dtypes."""
    try:
        update = reply.content["arrays"].to_torch_state_dict()
    except Exception as err:  # any malformed record: the reply is rejected, the round goes on
        raise Rejected(f"the reply's weights cannot be read ({_short(err)})") from None
    if list(update) != list(global_arrays):
        raise Rejected("the reply's weights have other names (or order) than the global model's")
    for name, tensor in update.items():
        if tensor.shape != global_arrays[name].shape:
            raise Rejected(f"weight {name} has shape {tuple(tensor.shape)}")
        if tensor.dtype != global_arrays[name].dtype:
            raise Rejected(f"weight {name} has dtype {tensor.dtype}, not "
                           f"{global_arrays[name].dtype}")
        if not torch.isfinite(tensor).all():
            raise Rejected(f"weight {name} is not finite")
    return update


def _rounded(x: float) -> float:
    return float(f"{x:.6g}")


def _recipe(s: ExperimentConfig) -> Recipe:
    """The proposal's public recipe, with the noise an owner with a fresh budget uses."""
    try:
        noise = calibrate_noise(epsilon=s.epsilon, delta=s.delta, sample_rate=s.sample_rate,
                                steps=s.rounds * s.steps_per_round, accountant=s.accountant)
    except ValueError:  # no noise fits the proposal: honest owners refuse to train, and
        noise = 0.0       # an update claiming noise may move only as far as its signal
    return Recipe(model=s.model, optimizer=s.optimizer, learning_rate=s.learning_rate,
                  max_grad_norm=s.max_grad_norm, batch_size=s.batch_size, proposal_noise=noise)


def _owner_id(cid) -> int:
    if isinstance(cid, bool) or not isinstance(cid, int) or not 0 <= cid <= 10**9:
        raise Rejected(f"client_id {_short(cid)} is not an owner id")
    return cid


def _rejected(base: dict, cid: int | None, why: str) -> dict:
    return {**base, "client_id": cid, "mechanism": REFUSAL, "verdict": "rejected",
            "reason": why}


def _privacy_record(reply: Message):
    try:
        return reply.content["privacy"]
    except Exception:
        raise Rejected("the reply lacks its 'privacy' record") from None


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _short(value) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS] + "…"


"""The coordinator's guard around a Flower strategy: whom to ask, what to count, what to ledger.

A strategy wrapper in the shape of Flower's own DP wrappers: ``configure_train``
asks the inner strategy for its messages, drops owners whose budget is spent and
samples the rest (Poisson, rate ``fraction``, with a secret coin); ``aggregate_train``
judges every reply (:mod:`server.replies`), writes each as a ledger line, folds it
into the run's state, and hands only accepted, sanitised replies to the inner
strategy, or to owner-level DP (:mod:`server.client_dp`), which releases every round.
Nothing a reply holds can raise out of a round.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, Strategy
from rich.console import Console

from privacy.ledger import EXHAUSTED, GENESIS, NONPRIVATE, Ledger
from server.client_dp import ClientLevelGaussian
from server.replies import Judgement, ReplyJudge

console = Console(highlight=False)


@dataclass
class OwnerRecord:
    """What the server knows of one owner's spend, from its signed events."""

    client_id: int
    epsilon: float = 0.0
    lifetime_epsilon: float = 0.0
    budget: float | None = None
    steps: int = 0
    rounds: int = 0
    exhausted: bool = False
    refusals: list[str] = field(default_factory=list)


@dataclass
class RunState:
    """The coordinator's state across rounds."""

    run_id: int = 0
    private: bool = True
    owners: dict[int, OwnerRecord] = field(default_factory=dict)
    exhausted_nodes: set[int] = field(default_factory=set)
    rounds_completed: int = 0
    rejected: list[str] = field(default_factory=list)
    clipped: list[str] = field(default_factory=list)
    class_shares: dict | None = None
    """The release's class shares from the owners' noisy counts (None: balanced)."""
    condition_counts: dict | None = None
    """The GAN's training-by-sampling counts from the owners' noisy category counts
    (None: no condition)."""
    released_model: str = "the last round's global model"
    """Which model the release samples (the GAN's: its generator average)."""
    client_level_epsilon: float | None = None
    ledger_head: str = GENESIS
    ledger_lines: int = 0


def record(state: RunState, judgement: Judgement, server_round: int, say: bool = True) -> None:
    """Fold one judged reply into the run's state (spends only from authentic events)."""
    line, entry = judgement.line, judgement.entry
    if line["verdict"] == "rejected":
        who = f"owner {line['client_id']} (node {line['node_id']})" \
            if line.get("client_id") is not None else f"node {line['node_id']}"
        why = line.get("rejection") or line["reason"]
        state.rejected.append(f"round {server_round}: {who}: {why}")
        if say:
            console.print(f"round {server_round}: rejected {who}: {why}")
    if line.get("clipped"):
        state.clipped.append(f"round {server_round}: owner {line['client_id']}: norm "
                             f"{line['update_norm']:.4g} > bound {line['update_bound']:.4g}")
        if say:
            console.print(f"round {server_round}: owner {line['client_id']}'s update clipped "
                          f"to {line['update_bound']:.4g} (norm {line['update_norm']:.4g})")
    if judgement.client_id is None:
        if line["verdict"] == "recorded":  # an unsigned refusal: no owner can be named
            state.rejected.append(f"round {server_round}: node {line['node_id']}: "
                                  f"{line['reason']}")
        return
    owner = state.owners.setdefault(judgement.client_id, OwnerRecord(judgement.client_id))
    if entry is not None and entry["mechanism"] == "dp-sgd":
        owner.steps += entry["steps"]
        owner.rounds += 1
        owner.epsilon = float(entry["epsilon"])
        owner.lifetime_epsilon = float(entry["lifetime_epsilon"])
        owner.budget = float(entry["epsilon_budget"])
    elif entry is not None and entry["mechanism"] == NONPRIVATE:
        owner.rounds += 1
    if judgement.status in ("refused", "failed") and line["verdict"] == "recorded":
        owner.refusals.append(f"round {server_round}: {judgement.status}: {line['reason']}")
        if say:
            console.print(f"round {server_round}: owner {judgement.client_id} "
                          f"{judgement.status}: {line['reason']}")
    exhausted = judgement.status in ("exhausted", "trained-exhausted") or \
        (entry is not None and entry.get("exhausted") is True)
    if exhausted and entry is not None:
        owner.exhausted = True
        state.exhausted_nodes.add(line["node_id"])


def state_from_ledger(run_id: int, private: bool, entries: list[dict]) -> RunState:
    """The state a resumed run starts from: every line its ledger already holds, folded in."""
    state = RunState(run_id=run_id, private=private)
    for line in entries:
        entry = line.get("owner_entry")
        if line["mechanism"] == "gaussian-aggregate":
            state.client_level_epsilon = float(line["epsilon"])
            continue
        if entry is None:
            status = None
        elif entry["mechanism"] == "dp-sgd":
            status = "trained-exhausted" if entry.get("exhausted") else "trained"
        elif entry["mechanism"] == NONPRIVATE:
            status = "nonprivate"
        else:
            status = "exhausted" if entry.get("reason") == EXHAUSTED else "refused"
        record(state, Judgement(line, status, entry), line["round"], say=False)
    state.ledger_head = entries[-1]["hash"] if entries else GENESIS
    state.ledger_lines = len(entries)
    return state


class OwnerGuard(Strategy):
    """Sampling, reply judgement and the ledger around an inner strategy."""

    def __init__(self, inner: FedAvg, *, judge: ReplyJudge, ledger: Ledger, state: RunState,
                 fraction: float, owner_dp: ClientLevelGaussian | None = None):
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction={fraction!r}; expected a probability in (0, 1]")
        self.inner, self.judge, self.ledger, self.state = inner, judge, ledger, state
        self.fraction, self.owner_dp = fraction, owner_dp
        self.candidates = 0
        self.accepted = 0
        self._current: ArrayRecord | None = None
        self._asked: list[Message] = []
        self._coin = random.SystemRandom()  # which owners train: secret, as amplification needs

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        """The inner strategy's messages, less exhausted owners, Poisson-sampled."""
        self._current = arrays
        candidates = [m for m in self.inner.configure_train(server_round, arrays, config, grid)
                      if m.metadata.dst_node_id not in self.state.exhausted_nodes]
        self.candidates = len(candidates)
        self._asked = [m for m in candidates if self._coin.random() < self.fraction]
        return self._asked

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord]:
        """Judge and ledger every reply; aggregate the accepted ones (owner-level DP: always)."""
        current = self._current
        global_arrays = current.to_torch_state_dict()
        accepted, heard = [], set()
        # The grid gave each message its id when it sent it; the SuperLink's own error
        # replies (a node gone silent) come from the SuperLink and name the message.
        asked = {m.metadata.message_id: int(m.metadata.dst_node_id) for m in self._asked}
        for reply in replies:
            node = int(reply.metadata.src_node_id)
            if reply.has_error() and node not in asked.values():
                node = asked.get(reply.metadata.reply_to_message_id, node)
            heard.add(node)
            judgement = self.judge.judge(reply, server_round, global_arrays, node)
            self.ledger.append(judgement.line)
            try:
                record(self.state, judgement, server_round)
            except Exception as err:  # the line is ledgered; the report misses a note only
                self.state.rejected.append(f"round {server_round}: node {node}: its line "
                                           f"could not be summarised ({type(err).__name__})")
            if judgement.counts:
                accepted.append(reply)
        for node in sorted(set(asked.values()) - heard):
            self.state.rejected.append(f"round {server_round}: node {node}: no reply within "
                                       "the round timeout")
            console.print(f"round {server_round}: node {node} did not reply in time; left out")
        self.accepted = len(accepted)
        metrics = MetricRecord({"accepted": len(accepted)})
        if self.owner_dp is not None:  # released every round, whoever was sampled or replied
            arrays = self.owner_dp.aggregate(current, accepted)
            self.ledger.append(self.owner_dp.ledger_event(server_round, self.state.run_id))
            self.state.client_level_epsilon = self.owner_dp.epsilon
            return arrays, metrics
        if not accepted:
            return None, metrics
        try:
            arrays, _ = self.inner.aggregate_train(server_round, accepted)
        except Exception as err:  # checked replies should never get here; if they do, the
            # round keeps its model rather than losing the run
            self.state.rejected.append(f"round {server_round}: aggregation failed "
                                       f"({type(err).__name__}); the model is kept")
            return None, metrics
        return arrays, metrics

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        """No federated evaluation: the release is judged on the public holdout."""
        return []

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]):
        """Nothing to aggregate (see configure_evaluate)."""
        return None

    def summary(self) -> None:
        """Log the wrapper's settings, then the inner strategy's."""
        console.print(f"owner guard: owners sampled at {self.fraction:g}, every reply judged "
                      "and ledgered")
        self.inner.summary()

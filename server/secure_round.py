"""One round of distributed noise on the coordinator: Flower's SecAgg+, judged and ledgered.

Flower's ``SecAggPlusWorkflow`` runs the protocol (setup, key sharing, masked vectors,
unmasking) on its legacy path; a small legacy strategy gives it the round's
instructions and takes back the unmasked sum, and a recording grid keeps every
owner's collect-stage reply, so each signed event is judged and ledgered even when
the protocol halts. The sum is released (applied to the global model) only when it
holds at least the plan's survivors and every owner in it is accepted: a masked sum
cannot be taken apart, so one bad reply discards the round. SecAgg+'s threshold is
the survivors too, so a sum of fewer owners is never unmasked at all.

The coordinator sees the sum, never an owner's vector: per-owner bounds and robust
aggregation are impossible here; the released step is clipped to what honest owners'
vectors can reach (post-processing). For the GAN the sum is the discriminator's
real-record term; the coordinator adds the fakes' term and takes the generator's step
itself (neither reads a record: post-processing of the released sum).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.common import FitIns, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.compat.common.recorddict_compat import parameters_to_arrayrecord
from flwr.server import ServerConfig
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.strategy import Strategy
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from rich.console import Console

from genai_models.cgan import ConditionalGAN
from genai_models.gan_steps import MODE_SEEKING_DISTRIBUTED, fake_losses, generator_step
from privacy import secagg_masks
from privacy.distributed_noise import (
    KEY_PROOF,
    KEY_PROOFS,
    MODULUS_RANGE,
    QUANTIZATION_RANGE,
    SUM_BOUND,
    SecureSumPlan,
    privacy_of_error,
)
from privacy.experiment import ExperimentConfig
from privacy.ledger import Ledger
from privacy.linear_clipping import clipped_gradient_sum
from privacy.update_bound import GENERATOR_BETAS, GENERATOR_LR
from server.owner_guard import RunState, record
from server.release import condition_counts
from server.replies import ReplyJudge

secagg_masks.install()  # unmask with the owners' generator (see privacy.secagg_masks)

console = Console(highlight=False)


class _SumTaker(Strategy):
    """The legacy strategy SecAgg+ calls: the round's instructions out, the sum back."""

    def __init__(self, fitins: FitIns, nodes: list[int], grid, run_id: int):
        self.fitins, self.nodes, self.grid, self.run_id = fitins, nodes, grid, run_id
        self.mean: list[np.ndarray] | None = None
        self.summed = 0

    def initialize_parameters(self, client_manager):
        """Unused: the coordinator holds the model."""
        return None

    def configure_fit(self, server_round, parameters, client_manager):
        """Every candidate owner, with the round's instructions."""
        return [(GridClientProxy(n, self.grid, self.run_id), self.fitins) for n in self.nodes]

    def aggregate_fit(self, server_round, results, failures):
        """Keep SecAgg+'s unmasked mean and how many vectors it holds; update nothing."""
        if results:
            self.mean = parameters_to_ndarrays(results[0][1].parameters)
            self.summed = len(results)
        return None, {}

    def configure_evaluate(self, server_round, parameters, client_manager):
        """No federated evaluation."""
        return []

    def aggregate_evaluate(self, server_round, results, failures):
        """No federated evaluation."""
        return None, {}

    def evaluate(self, server_round, parameters):
        """No federated evaluation."""
        return None


@dataclass
class _RecordingGrid:
    """The grid, passed through; keeps the replies to the collect stage (the owners' events).

    It also carries each owner's signed word for its SecAgg+ keys (its setup reply's
    proof) to the owners it shares keys with, who refuse participants no registered
    owner vouches for.
    """

    grid: object
    collected: list[tuple[int, Message]] = field(default_factory=list)
    proofs: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, name):
        return getattr(self.grid, name)

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        for m in messages:
            if _stage(m) == Stage.SHARE_KEYS:
                listed = [k for k in m.content.config_records[RECORD_KEY_CONFIGS]
                          if k != Key.STAGE]
                m.content.config_records[KEY_PROOFS] = ConfigRecord(
                    {k: self.proofs[k] for k in listed if k in self.proofs})
        replies = list(self.grid.send_and_receive(messages, timeout=timeout))
        if any(_stage(m) == Stage.SETUP for m in messages):
            for reply in replies:
                if not reply.has_error() and KEY_PROOF in reply.content.config_records:
                    self.proofs[str(reply.metadata.src_node_id)] = json.dumps(
                        dict(reply.content.config_records[KEY_PROOF]))
        if any(_stage(m) == Stage.COLLECT_MASKED_VECTORS for m in messages):
            asked = {m.metadata.message_id: int(m.metadata.dst_node_id) for m in messages}
            for reply in replies:
                node = int(reply.metadata.src_node_id)
                if node not in asked.values():  # the SuperLink's reply for a vanished node
                    node = asked.get(reply.metadata.reply_to_message_id, node)
                self.collected.append((node, reply))
        return replies


def _stage(msg: Message):
    try:
        return msg.content.config_records[RECORD_KEY_CONFIGS][Key.STAGE]
    except KeyError:
        return None


@dataclass
class SecureRound:
    """Runs distributed-noise rounds for one run (the server optimizer keeps its state)."""

    settings: ExperimentConfig
    plan: SecureSumPlan
    judge: ReplyJudge
    ledger: Ledger
    state: RunState
    run_id: int
    model: torch.nn.Module
    accepted: int = 0
    optimizer: torch.optim.Optimizer | None = None
    generator_optimizer: torch.optim.Optimizer | None = None
    """The GAN's generator's (the coordinator trains it: it never reads a real record)."""

    def __post_init__(self):
        params = [p for p in self.model.record_network.parameters() if p.requires_grad]
        s = self.settings
        if isinstance(self.model, ConditionalGAN):  # Adam with the GAN's betas for both nets
            self.optimizer = torch.optim.Adam(params, lr=s.learning_rate, betas=GENERATOR_BETAS)
            self.generator_optimizer = torch.optim.Adam(
                self.model.generator.parameters(), lr=GENERATOR_LR, betas=GENERATOR_BETAS)
        elif s.optimizer == "adam":
            self.optimizer = torch.optim.Adam(params, lr=s.learning_rate)
        else:
            self.optimizer = torch.optim.SGD(params, lr=s.learning_rate,
                                             momentum=s.server_momentum)

    def workflow(self) -> SecAggPlusWorkflow:
        """Flower's SecAgg+ with the settings every owner checks before taking part."""
        return SecAggPlusWorkflow(
            num_shares=1.0, reconstruction_threshold=self.plan.survivors, max_weight=1.0,
            clipping_range=self.plan.clipping_range, quantization_range=QUANTIZATION_RANGE,
            modulus_range=MODULUS_RANGE, timeout=self.settings.round_timeout)

    def run(self, grid, server_round: int, arrays: ArrayRecord,
            nodes: list[int]) -> ArrayRecord | None:
        """One secure sum over ``nodes``; the new global weights, or None (round discarded)."""
        self.accepted = 0
        weights = arrays.to_torch_state_dict()
        fitins = FitIns(ndarrays_to_parameters([t.numpy() for t in weights.values()]),
                        {"server-round": server_round, "run-id": self.run_id})
        taker = _SumTaker(fitins, nodes, grid, self.run_id)
        recording = _RecordingGrid(grid)
        context = LegacyContext(Context(run_id=self.run_id, node_id=0, node_config={},
                                        state=RecordDict(), run_config={}),
                                config=ServerConfig(num_rounds=1), strategy=taker)
        context.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord(
            {WorkflowKey.CURRENT_ROUND: server_round})
        context.state.array_records[MAIN_PARAMS_RECORD] = parameters_to_arrayrecord(
            fitins.parameters, keep_input=True)
        try:
            self.workflow()(recording, context)
        except Exception as err:  # a reply the protocol cannot read: the round is discarded
            console.print(f"round {server_round}: SecAgg+ failed ({type(err).__name__})")
            taker.mean = None
        judged = [(node, reply, self.judge.judge(_for_judge(reply), server_round, weights,
                                                 node, masked=True))
                  for node, reply in recording.collected]  # judge never raises
        in_sum = [j for _, reply, j in judged if not reply.has_error()]
        why = self._discard_reason(taker, in_sum)
        for _, _, judgement in judged:
            if why and judgement.counts:
                judgement.line = judgement.line | {"verdict": "recorded", "discarded": why}
            self.ledger.append(judgement.line)
            record(self.state, judgement, server_round)
        if why:
            self.state.rejected.append(f"round {server_round}: discarded: {why}")
            console.print(f"round {server_round}: discarded ({why})")
            return None
        self.accepted = len(in_sum)
        return self._step(weights, taker.mean, server_round)

    def _discard_reason(self, taker: _SumTaker, in_sum: list) -> str | None:
        if taker.mean is None:
            return (f"SecAgg+ did not complete with at least {self.plan.survivors} owners; "
                    "nothing was unmasked")
        if taker.summed != len(in_sum) or len(in_sum) < self.plan.survivors:
            return f"the sum holds {taker.summed} owners; at least {self.plan.survivors} needed"
        if not all(j.counts for j in in_sum):
            return "an owner in the sum was rejected (a masked sum cannot be taken apart)"
        return None

    def _step(self, weights: dict[str, torch.Tensor], mean: list[np.ndarray],
              server_round: int) -> ArrayRecord | None:
        """Apply the released mean as the step's gradient, clipped to what honest owners reach."""
        n = self.accepted
        flat = torch.cat([torch.from_numpy(np.asarray(a, dtype=np.float64)).reshape(-1)
                          for a in mean])
        noise = self.plan.share_std * (math.sqrt(self.plan.dimension) + 10) / math.sqrt(n)
        bound = SUM_BOUND * self.plan.max_grad_norm + noise
        norm = float(flat.norm())
        if not math.isfinite(norm):
            self.state.rejected.append(f"round {server_round}: the sum is not finite; kept "
                                       "the model")
            return None
        if norm > bound:
            flat = flat * (bound / norm)
            self.state.clipped.append(f"round {server_round}: the secure sum's mean: norm "
                                      f"{norm:.4g} > bound {bound:.4g}")
        self.model.load_state_dict(weights)
        gan = self.generator_optimizer is not None
        fakes = self.settings.batch_size * n
        if gan:  # training-by-sampling on the owners' released category counts (this round's too)
            counted = condition_counts(self.ledger.entries, self.model.conditions)
            self.model.condition_on(counted["counts"] if counted else None)
        extra = self._fakes_term(fakes) if gan else {}
        start = 0
        for p in (p for p in self.model.record_network.parameters() if p.requires_grad):
            released = flat[start:start + p.numel()].reshape(p.shape).to(p.dtype)
            p.grad = released + extra[p] if p in extra else released
            start += p.numel()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if gan:  # post-processing of the released discriminator
            generator_step(self.model, self.model.discriminator, self.generator_optimizer,
                           fakes, mode_seeking=MODE_SEEKING_DISTRIBUTED)
            self.model.zero_grad(set_to_none=True)
        return ArrayRecord({k: v.detach().clone() for k, v in self.model.state_dict().items()})

    def _fakes_term(self, fakes: int) -> dict[torch.nn.Parameter, torch.Tensor]:
        """The discriminator's gradient on ``fakes`` fresh fakes, clipped per fake like a record.

        No real record is in it (post-processing). Clipped at C as the owners clip their
        real records, so that neither term outweighs the other: with the fakes' term
        unclipped, one seed's discriminator learned to call every record fake (its score
        on real digits fell to −47 by round 40) and the generator drew blank images.
        """
        sums = clipped_gradient_sum(self.model.discriminator,
                                    lambda: fake_losses(self.model, fakes), fakes,
                                    self.plan.max_grad_norm)
        return {p: g / fakes for p, g in sums.items()}


def _for_judge(reply: Message) -> Message:
    """A collect-stage reply as the judge reads replies: its privacy record, no weights.

    The weights are masked inside the sum; an owner that declined sent its signed
    record in the error reason instead.
    """
    try:
        if reply.has_error():
            privacy = privacy_of_error(reply.error.reason)
            if privacy is None:
                return reply
        else:
            privacy = dict(reply.content.config_records["fitres.metrics"])
        return Message(content=RecordDict({"privacy": ConfigRecord(privacy)}),
                       dst_node_id=0, message_type="train")
    except Exception:  # values a ConfigRecord cannot hold, no metrics: judged as unreadable
        return Message(content=RecordDict(), dst_node_id=0, message_type="train")

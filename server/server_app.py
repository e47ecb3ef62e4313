"""The Flower ServerApp: sample owners, validate and aggregate their updates, keep the ledger.

Flower's Message-API ``FedAvgM`` (server momentum; plain FedAvg at momentum 0)
configures and aggregates each round, or :mod:`server.client_dp` under owner-level
DP; this module adds what a privacy product needs around it: owners are sampled
(Poisson, rate ``fraction``), every reply is judged (:mod:`server.replies`) and
becomes a line of ``ledger.jsonl`` embedding the owner's signed event, exhausted
owners are no longer selected, each checkpoint records the ledger's head, and the
run ends cleanly (with its release and report) when no owner can train.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvgM
from rich.console import Console

from genai_models import build_model, resolve
from privacy.atomic import write_text
from privacy.experiment import ExperimentConfig
from privacy.ledger import GENESIS, NONPRIVATE, Ledger
from privacy.signing import load_owner_keys
from server.checkpoints import save_checkpoint
from server.client_dp import ClientDpSettings, ClientLevelGaussian
from server.release import release_images, release_table
from server.replies import Judgement, ReplyJudge
from server.run_dir import run_dir_for

app = ServerApp()
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
    client_level_epsilon: float | None = None
    ledger_head: str = GENESIS
    ledger_lines: int = 0


def _record(state: RunState, judgement: Judgement, server_round: int) -> None:
    """Fold one judged reply into the run's state (spends only from authentic events)."""
    line, entry = judgement.line, judgement.entry
    if line["verdict"] == "rejected":
        who = f"owner {line['client_id']}" if line.get("client_id") is not None else \
            f"node {line['node_id']}"
        why = line.get("rejection") or line["reason"]
        state.rejected.append(f"round {server_round}: {who}: {why}")
        console.print(f"round {server_round}: rejected {who}: {why}")
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
        console.print(f"round {server_round}: owner {judgement.client_id} "
                      f"{judgement.status}: {line['reason']}")
    if judgement.status in ("exhausted", "trained-exhausted") and entry is not None:
        owner.exhausted = True
        state.exhausted_nodes.add(line["node_id"])


def run_federation(grid: Grid, run_config: dict, run_id: int = 0) -> Path:
    """Run every round, release synthetic data and write the report; return the run dir."""
    settings = ExperimentConfig.parse(run_config, "run_config")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    run_dir = run_dir_for(settings.run_dir, settings.model, settings.dataset)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.toml", tomli_w.dumps(settings.to_run_config()))
    spec, codec = resolve(settings.dataset, settings.schema_path)
    torch.manual_seed(settings.seed)
    model = build_model(
        settings.model, spec, hidden_dim=settings.hidden_dim, latent_dim=settings.latent_dim
    )
    arrays = ArrayRecord(model.state_dict())
    base = FedAvgM(
        server_learning_rate=settings.server_learning_rate,
        server_momentum=settings.server_momentum,
        fraction_train=1.0,
        fraction_evaluate=0.0,
        min_train_nodes=settings.num_clients,
        min_available_nodes=settings.num_clients,
        # Uniform: an owner's record count is private (and client-level DP's noise
        # assumes a uniform average over owners).
        weighted_by_key="unit-weight",
    )
    dp_settings = ClientDpSettings.from_experiment(settings)
    owner_dp = ClientLevelGaussian(dp_settings) if dp_settings else None
    judge = ReplyJudge(settings, run_id,
                       load_owner_keys(settings.owner_keys) if settings.owner_keys else None)
    ledger = Ledger(run_dir / "ledger.jsonl")
    if settings.private or owner_dp:
        # An empty ledger is a statement too: nothing was spent (yet).
        ledger.path.touch()
    state = RunState(run_id=run_id, private=settings.private)
    train_config = ConfigRecord({})
    timings["setup"] = time.perf_counter() - t0

    t_train = time.perf_counter()
    coin = random.SystemRandom()  # which owners train: secret, as amplification assumes
    for server_round in range(1, settings.rounds + 1):
        t_round = time.perf_counter()
        candidates = [
            m
            for m in base.configure_train(server_round, arrays, train_config, grid)
            if m.metadata.dst_node_id not in state.exhausted_nodes
        ]
        if not candidates:
            console.print(f"round {server_round}: every owner's budget is spent; stopping")
            break
        messages = [m for m in candidates if coin.random() < settings.fraction]
        replies = list(grid.send_and_receive(messages)) if messages else []
        global_arrays = arrays.to_torch_state_dict()
        accepted = []
        for reply in replies:
            judgement = judge.judge(reply, server_round, global_arrays)
            ledger.append(judgement.line)
            _record(state, judgement, server_round)
            if judgement.counts:
                accepted.append(reply)
        if owner_dp is not None:  # released every round, whoever was sampled or replied
            arrays = owner_dp.aggregate(arrays, accepted)
            ledger.append(owner_dp.ledger_event(server_round, run_id))
            state.client_level_epsilon = owner_dp.epsilon
        elif accepted:
            new_arrays, _ = base.aggregate_train(server_round, accepted)
            if new_arrays is not None:
                arrays = new_arrays
        state.rounds_completed = server_round
        state.ledger_head, state.ledger_lines = ledger.head, len(ledger.entries)
        save_checkpoint(
            run_dir,
            server_round,
            arrays.to_torch_state_dict(),
            {"ledger_head": ledger.head, "ledger_lines": len(ledger.entries), "run_id": run_id,
             "exhausted_nodes": sorted(state.exhausted_nodes)},
        )
        _progress(settings, state, server_round, len(accepted), time.perf_counter() - t_round)
        # Every owner must join the first round; later rounds go on with those still
        # connected, so a node that disappears does not stall the federation.
        base.min_available_nodes = base.min_train_nodes = 1
    timings["training"] = time.perf_counter() - t_train

    t_release = time.perf_counter()
    model.load_state_dict(arrays.to_torch_state_dict())
    if codec is None:
        release_images(model, spec, settings.synthetic_samples, settings.seed,
                       run_dir / "synthetic")
    else:
        release_table(model, codec, settings.synthetic_samples, settings.seed,
                      run_dir / "synthetic")
    timings["release"] = time.perf_counter() - t_release

    # Judging the release lives in simulations/ (it needs the public holdout);
    # the ServerApp calls it so that `flwr run .` ends with the same report.
    from simulations.report import finish_run

    finish_run(run_dir, settings, state, timings)
    return run_dir


def _progress(settings: ExperimentConfig, state: RunState, rnd: int, trained: int, secs: float):
    spent = [o.epsilon for o in state.owners.values()]
    if not settings.private:
        eps = "no DP (ε = ∞)"
    else:
        eps = f"ε max {max(spent, default=0.0):.2f} (proposed ≤ {settings.epsilon:g} a run)"
    exhausted = sum(o.exhausted for o in state.owners.values())
    if state.client_level_epsilon is not None:
        eps += f" · owner-level ε {state.client_level_epsilon:.2f}"
    console.print(
        f"round {rnd:>3}/{settings.rounds} · {trained:>2} owners trained · "
        f"{exhausted} exhausted · {eps} · {secs:5.1f} s"
    )


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Entry point for ``flwr run .``: the experiment comes from ``context.run_config``."""
    run_federation(grid, dict(context.run_config), context.run_id)

"""The Flower ServerApp: sample owners, validate and aggregate their updates, keep the ledger.

Flower's Message-API ``FedAvg`` configures and aggregates each round; this module
adds what a privacy product needs around it: replies are validated before they
count, every privacy event is chained into ``ledger.jsonl``, exhausted owners are
no longer selected, and the run ends cleanly (with its release and report) when
no owner can train.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import tomli_w
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from rich.console import Console

from genai_models import BUILTIN_SPECS, build_model
from server.atomic import write_text
from server.checkpoints import save_checkpoint
from server.ledger import Ledger
from server.release import release_images
from server.settings import ServerSettings

app = ServerApp()
console = Console(highlight=False)


@dataclass
class OwnerRecord:
    """What the server knows of one owner's spend, from its replies."""

    client_id: int
    epsilon: float = 0.0
    budget: float = math.inf
    steps: int = 0
    rounds: int = 0
    num_examples: int = 0
    exhausted: bool = False


@dataclass
class RunState:
    """The coordinator's state across rounds."""

    owners: dict[int, OwnerRecord] = field(default_factory=dict)
    exhausted_nodes: set[int] = field(default_factory=set)
    rounds_completed: int = 0
    rejected: list[str] = field(default_factory=list)


def resolve_run_dir(settings: ServerSettings) -> Path:
    """The run directory: as configured, or ``runs/<UTC timestamp>-<model>-<dataset>``."""
    if settings.run_dir:
        return Path(settings.run_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("runs") / f"{stamp}-{settings.model}-{settings.dataset}"


def _reject(reply: Message, global_arrays: dict[str, torch.Tensor]) -> str | None:
    """Why a reply cannot count, or None when it can."""
    content = reply.content
    if "arrays" not in content or "privacy" not in content:
        return "reply lacks 'arrays' or 'privacy'"
    update = content["arrays"].to_torch_state_dict()
    if update.keys() != global_arrays.keys():
        return "reply's weights have other names than the global model's"
    for name, tensor in update.items():
        if tensor.shape != global_arrays[name].shape:
            return f"weight {name} has shape {tuple(tensor.shape)}"
        if not torch.isfinite(tensor).all():
            return f"weight {name} is not finite"
    event = content["privacy"]
    if event["mechanism"] == "dp-sgd" and event["epsilon"] > event["epsilon-budget"] * 1.0001:
        return f"epsilon {event['epsilon']:.4f} exceeds the budget {event['epsilon-budget']}"
    return None


def _ledger_event(server_round: int, event: ConfigRecord) -> dict:
    return {
        "round": server_round,
        "client_id": int(event["client-id"]),
        "mechanism": str(event["mechanism"]),
        "noise_multiplier": float(event["noise-multiplier"]),
        "sample_rate": float(event["sample-rate"]),
        "steps": int(event["steps"]),
        "max_grad_norm": float(event["max-grad-norm"]),
        "delta": float(event["delta"]),
        "accountant": str(event["accountant"]),
        "epsilon": float(event["epsilon"]),
        "epsilon_budget": float(event["epsilon-budget"]),
    }


def _record_reply(state: RunState, node_id: int, event: ConfigRecord) -> OwnerRecord:
    cid = int(event["client-id"])
    owner = state.owners.setdefault(cid, OwnerRecord(client_id=cid))
    owner.num_examples = int(event["num-examples"])
    owner.steps += int(event["steps"])
    owner.rounds += int(event["steps"]) > 0
    if event["mechanism"] == "dp-sgd":
        owner.epsilon = float(event["epsilon"])
        owner.budget = float(event["epsilon-budget"])
    if str(event["status"]) in ("exhausted", "trained-exhausted"):
        owner.exhausted = True
        state.exhausted_nodes.add(node_id)
    return owner


def run_federation(grid: Grid, run_config: dict) -> Path:
    """Run every round, release synthetic data and write the report; return the run dir."""
    settings = ServerSettings.from_run_config(run_config)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    run_dir = resolve_run_dir(settings)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.toml", tomli_w.dumps(dict(run_config)))
    spec = BUILTIN_SPECS[settings.dataset]
    torch.manual_seed(settings.seed)
    model = build_model(
        settings.model, spec, hidden_dim=settings.hidden_dim, latent_dim=settings.latent_dim
    )
    arrays = ArrayRecord(model.state_dict())
    strategy = FedAvg(
        fraction_train=1.0,
        fraction_evaluate=0.0,
        min_train_nodes=settings.num_clients,
        min_available_nodes=settings.num_clients,
    )
    ledger = Ledger(run_dir / "ledger.jsonl")
    state = RunState()
    timings["setup"] = time.perf_counter() - t0

    t_train = time.perf_counter()
    for server_round in range(1, settings.rounds + 1):
        t_round = time.perf_counter()
        messages = [
            m
            for m in strategy.configure_train(server_round, arrays, ConfigRecord(), grid)
            if m.metadata.dst_node_id not in state.exhausted_nodes
        ]
        if not messages:
            console.print(f"round {server_round}: every owner's budget is spent; stopping")
            break
        replies = list(grid.send_and_receive(messages))
        global_arrays = arrays.to_torch_state_dict()
        accepted = []
        for reply in replies:
            node = reply.metadata.src_node_id
            if reply.has_error():
                why = f"round {server_round}: owner node {node} failed: {reply.error.reason}"
                state.rejected.append(why)
                console.print(why)
                continue
            reason = _reject(reply, global_arrays)
            if reason:
                why = f"round {server_round}: rejected the update of node {node}: {reason}"
                state.rejected.append(why)
                console.print(why)
                continue
            event = reply.content["privacy"]
            _record_reply(state, node, event)
            if int(event["steps"]) == 0:
                continue
            if event["mechanism"] == "dp-sgd":
                ledger.append(_ledger_event(server_round, event))
            accepted.append(reply)
        if accepted:
            new_arrays, _ = strategy.aggregate_train(server_round, accepted)
            if new_arrays is not None:
                arrays = new_arrays
        state.rounds_completed = server_round
        save_checkpoint(
            run_dir,
            server_round,
            arrays.to_torch_state_dict(),
            {"ledger_head": ledger.head, "exhausted_nodes": sorted(state.exhausted_nodes)},
        )
        _progress(settings, state, server_round, len(accepted), time.perf_counter() - t_round)
    timings["training"] = time.perf_counter() - t_train

    t_release = time.perf_counter()
    model.load_state_dict(arrays.to_torch_state_dict())
    release_images(model, spec, settings.synthetic_samples, settings.seed, run_dir / "synthetic")
    timings["release"] = time.perf_counter() - t_release

    # Judging the release lives in simulations/ (it needs the public holdout);
    # the ServerApp calls it so that `flwr run .` ends with the same report.
    from simulations.report import finish_run

    finish_run(run_dir, run_config, state, timings)
    return run_dir


def _progress(settings: ServerSettings, state: RunState, rnd: int, trained: int, secs: float):
    spent = [o.epsilon for o in state.owners.values()]
    if not settings.private:
        eps = "no DP (ε = ∞)"
    else:
        eps = f"ε max {max(spent, default=0.0):.2f} / {settings.epsilon:g}"
    exhausted = sum(o.exhausted for o in state.owners.values())
    console.print(
        f"round {rnd:>3}/{settings.rounds} · {trained:>2} owners trained · "
        f"{exhausted} exhausted · {eps} · {secs:5.1f} s"
    )


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Entry point for ``flwr run .``: the experiment comes from ``context.run_config``."""
    run_federation(grid, dict(context.run_config))

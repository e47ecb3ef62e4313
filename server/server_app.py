"""The Flower ServerApp: sample owners, validate and aggregate their updates, keep the ledger.

Flower's Message-API ``FedAvgM`` (server momentum; plain FedAvg at momentum 0),
wrapped in Flower's DP wrappers for owner-level DP, configures and aggregates each
round; this module
adds what a privacy product needs around it: replies are validated before they
count, every privacy event is chained into ``ledger.jsonl``, exhausted owners are
no longer selected, and the run ends cleanly (with its release and report) when
no owner can train.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvgM
from rich.console import Console

from genai_models import build_model, resolve
from privacy.atomic import write_text
from privacy.experiment import ExperimentConfig
from privacy.ledger import EVENT_FIELDS, GENESIS, Ledger
from server import client_dp
from server.checkpoints import save_checkpoint
from server.release import release_images, release_table
from server.run_dir import run_dir_for

app = ServerApp()
console = Console(highlight=False)

STATUSES = ("trained", "trained-exhausted", "exhausted", "refused", "failed", "nonprivate")


@dataclass
class OwnerRecord:
    """What the server knows of one owner's spend, from its replies."""

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
    node_owner: dict[int, int] = field(default_factory=dict)
    rounds_completed: int = 0
    rejected: list[str] = field(default_factory=list)
    client_level_epsilon: float | None = None
    ledger_head: str = GENESIS


def _reject(reply: Message, global_arrays: dict[str, torch.Tensor], state: RunState) -> str | None:
    """Why a reply cannot count, or None when it can (refusals and failures count as such)."""
    content = reply.content
    if "privacy" not in content:
        return "reply lacks 'privacy'"
    event = content["privacy"]
    status = event.get("status")
    if status not in STATUSES:
        return f"unknown status {status!r}"
    cid = event.get("client_id")
    if cid is not None:
        if isinstance(cid, bool) or not isinstance(cid, int) or cid < 0:
            return f"client_id {cid!r} is not an owner id"
        node = reply.metadata.src_node_id
        if state.node_owner.setdefault(node, cid) != cid:
            return f"claims owner {cid}, but spoke for owner {state.node_owner[node]} before"
    if status in ("refused", "failed", "exhausted"):
        return None
    if cid is None:
        return "reply lacks client_id"
    if "arrays" not in content:
        return "reply lacks 'arrays'"
    update = content["arrays"].to_torch_state_dict()
    if update.keys() != global_arrays.keys():
        return "reply's weights have other names than the global model's"
    for name, tensor in update.items():
        if tensor.shape != global_arrays[name].shape:
            return f"weight {name} has shape {tuple(tensor.shape)}"
        if not torch.isfinite(tensor).all():
            return f"weight {name} is not finite"
    if status == "nonprivate" and state.private:
        return "trained without DP in a private run"
    if status != "nonprivate":
        missing = [k for k in EVENT_FIELDS if k not in event]
        if missing:
            return f"privacy event lacks {', '.join(missing)}"
        if event["mechanism"] != "dp-sgd":
            return f"mechanism {event['mechanism']!r} is not dp-sgd"
        if event["run_id"] != state.run_id:
            return f"privacy event names run {event['run_id']}, not this run"
        if float(event["lifetime_epsilon"]) > float(event["epsilon_budget"]) * (1 + 1e-9):
            return (f"lifetime epsilon {event['lifetime_epsilon']:.4f} exceeds the budget "
                    f"{event['epsilon_budget']}")
    return None


def _record_reply(state: RunState, node_id: int, event: ConfigRecord, server_round: int):
    status = str(event["status"])
    if event.get("client_id") is None:
        state.rejected.append(f"round {server_round}: node {node_id}: {status}: "
                              f"{event.get('reason', '')}")
        return
    cid = int(event["client_id"])
    owner = state.owners.setdefault(cid, OwnerRecord(client_id=cid))
    owner.steps += int(event.get("steps", 0))
    owner.rounds += int(event.get("steps", 0)) > 0
    if event.get("mechanism") == "dp-sgd":
        owner.epsilon = float(event["epsilon"])
        owner.lifetime_epsilon = float(event["lifetime_epsilon"])
        owner.budget = float(event["epsilon_budget"])
    if status in ("refused", "failed"):
        owner.refusals.append(f"round {server_round}: {status}: {event.get('reason', '')}")
    if status in ("exhausted", "trained-exhausted"):
        owner.exhausted = True
        state.exhausted_nodes.add(node_id)


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
    user_dp = settings.client_dp != "none"
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
    dp_settings = client_dp.ClientDpSettings.from_experiment(settings)
    strategy = client_dp.wrap(base, dp_settings)
    federation_accountant = client_dp.ClientLevelAccountant(dp_settings) if user_dp else None
    ledger = Ledger(run_dir / "ledger.jsonl")
    if settings.private or user_dp:
        # An empty ledger is a statement too: nothing was spent (yet).
        ledger.path.touch()
    state = RunState(run_id=run_id, private=settings.private)
    train_config = ConfigRecord({})
    timings["setup"] = time.perf_counter() - t0

    t_train = time.perf_counter()
    for server_round in range(1, settings.rounds + 1):
        t_round = time.perf_counter()
        messages = [
            m
            for m in strategy.configure_train(server_round, arrays, train_config, grid)
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
            why = (
                f"owner node {node} failed: {reply.error.reason}"
                if reply.has_error()
                else _reject(reply, global_arrays, state)
            )
            if why:
                state.rejected.append(f"round {server_round}: {why}")
                console.print(f"round {server_round}: rejected: {why}")
                continue
            event = reply.content["privacy"]
            _record_reply(state, node, event, server_round)
            if event["status"] in ("refused", "failed"):
                console.print(f"round {server_round}: owner {event.get('client_id', '?')} "
                              f"{event['status']}: {event.get('reason', '')}")
            if int(event.get("steps", 0)) == 0 or "arrays" not in reply.content:
                continue
            if event.get("mechanism") == "dp-sgd":
                ledger.append({k: event[k] for k in EVENT_FIELDS} | {"round": server_round})
            accepted.append(reply)
        if accepted:
            clip = getattr(strategy, "clipping_norm", None)
            new_arrays, _ = strategy.aggregate_train(server_round, accepted)
            if new_arrays is not None:
                arrays = new_arrays
                if federation_accountant is not None:
                    sigma = client_dp.effective_noise_multiplier(strategy, len(accepted))
                    state.client_level_epsilon = federation_accountant.compose(
                        sigma, len(accepted)
                    )
                    ledger.append(
                        {
                            "round": server_round,
                            "client_id": None,
                            "mechanism": "gaussian-aggregate",
                            "noise_multiplier": sigma,
                            "sample_rate": 1.0,
                            "steps": 1,
                            "max_grad_norm": float(clip),
                            "run_id": run_id,
                            "delta": dp_settings.delta,
                            "accountant": "rdp",
                            "epsilon": state.client_level_epsilon,
                            "lifetime_epsilon": state.client_level_epsilon,
                            "epsilon_budget": None,
                            "participants": len(accepted),
                        }
                    )
        state.rounds_completed = server_round
        state.ledger_head = ledger.head
        save_checkpoint(
            run_dir,
            server_round,
            arrays.to_torch_state_dict(),
            {"ledger_head": ledger.head, "exhausted_nodes": sorted(state.exhausted_nodes)},
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

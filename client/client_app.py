"""The Flower ClientApp of one data owner: Message in, weights and a privacy event out.

Each owner also appends its events to its own hash-chained ledger (node_config
``ledger-path``, or the run's ``ledgers/`` folder in simulation), so that it can
audit its spend without trusting the coordinator. The ledger format is the
server's (``server/ledger.py``, which imports nothing but the standard library).

The ClientApp object does not live across rounds (P3): the calibrated noise
multiplier and the accountant history are kept in ``context.state``, which Flower
persists per node, so epsilon is cumulative over every round the owner trained in.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from privacy.accountant import History, calibrate_noise, epsilon_of, steps_that_fit
from client.dataset import LabelledData, load_owner_file, load_partition, with_canaries
from client.dp_training import RoundOutcome, train_nonprivate, train_private
from client.gan_training import train_nonprivate_gan, train_private_gan
from client.settings import ClientSettings
from genai_models import DataSpec, build_model, resolve
from genai_models.cgan import ConditionalGAN
from genai_models.table_codec import TableCodec
from privacy.ledger import Ledger

STATE_KEY = "fedsynth-privacy"

app = ClientApp()


def _load_data(s: ClientSettings, spec: DataSpec, codec: TableCodec | None) -> LabelledData:
    """The owner's own file (deployment), else its partition of the run's data (simulation)."""
    if s.own_data_path:
        return load_owner_file(s.own_data_path, spec, codec)
    data = load_partition(
        s.dataset,
        s.client_id,
        s.num_partitions,
        scheme=s.partition,
        alpha=s.alpha,
        holdout=s.holdout,
        seed=s.seed,
        data_path=s.data_path,
        schema_path=s.schema_path,
    )
    if s.canaries and s.client_id == 0:  # the canary audit's owner
        data = with_canaries(data, spec, s.canaries, s.seed)
    return data


def _restore(context: Context) -> tuple[float, History]:
    """The noise multiplier calibrated in an earlier round (0 if none) and the history."""
    if STATE_KEY not in context.state:
        return 0.0, []
    rec = context.state[STATE_KEY]
    if "steps" not in rec:
        return float(rec["noise-multiplier"]), []
    history = [
        (float(s), float(q), int(k))
        for s, q, k in zip(rec["sigmas"], rec["rates"], rec["steps"], strict=True)
    ]
    return float(rec["noise-multiplier"]), history


def _persist(context: Context, noise_multiplier: float, history: History) -> None:
    rec = ConfigRecord({"noise-multiplier": noise_multiplier})
    if history:
        rec["sigmas"] = [float(h[0]) for h in history]
        rec["rates"] = [float(h[1]) for h in history]
        rec["steps"] = [int(h[2]) for h in history]
    context.state[STATE_KEY] = rec


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Entry point for Flower: the experiment comes from ``context.run_config``."""
    return train_round(msg, context, dict(context.run_config))


def train_round(msg: Message, context: Context, run_config: dict) -> Message:
    """Train the global model locally for one round, within this owner's budget."""
    s = ClientSettings.from_context(context, run_config)
    config = msg.content["config"]
    server_round = int(config["server-round"])
    spec, codec = resolve(s.dataset, s.schema_path)
    data = _load_data(s, spec, codec)
    model = build_model(s.model, spec, hidden_dim=s.hidden_dim, latent_dim=s.latent_dim)
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    torch.manual_seed(s.seed * 1_000_003 + server_round * 1009 + s.client_id)

    gan = isinstance(model, ConditionalGAN)
    if not s.private:
        outcome = (train_nonprivate_gan if gan else train_nonprivate)(
            model,
            data,
            epochs=s.local_epochs,
            batch_size=s.batch_size,
            learning_rate=s.learning_rate,
            max_norm=s.max_grad_norm,
            optimizer=s.optimizer,
        )
        return _reply(msg, model, outcome, s, len(data), "nonprivate", None)

    if s.delta >= 1.0 / len(data):
        raise ValueError(
            f"delta={s.delta} must be below 1/{len(data)} (client {s.client_id}'s records) (P6)"
        )
    # Opacus's Poisson loader samples at 1 / (batches per epoch); using exactly that
    # rate keeps the accountant, the ledger and the sampler in agreement.
    batches_per_epoch = math.ceil(len(data) / s.batch_size)
    sample_rate = 1.0 / batches_per_epoch
    steps_per_round = s.local_epochs * batches_per_epoch
    sigma, history = _restore(context)
    if sigma == 0.0:
        sigma = calibrate_noise(
            epsilon=s.epsilon_budget,
            delta=s.delta,
            sample_rate=sample_rate,
            steps=s.rounds * steps_per_round,
            accountant=s.accountant,
        )
    budget = {"budget": s.epsilon_budget, "delta": s.delta, "accountant": s.accountant}
    steps = steps_that_fit(
        history, noise_multiplier=sigma, sample_rate=sample_rate, wanted=steps_per_round, **budget
    )
    if steps == 0:
        outcome = RoundOutcome(0, float("nan"), history)
        return _reply(msg, model, outcome, s, len(data), "exhausted", None)
    outcome = (train_private_gan if gan else train_private)(
        model,
        data,
        steps=steps,
        noise_multiplier=sigma,
        sample_rate=sample_rate,
        max_grad_norm=s.max_grad_norm,
        learning_rate=s.learning_rate,
        accountant=s.accountant,
        history=history,
        optimizer=s.optimizer,
    )
    _persist(context, sigma, outcome.history)
    # Exhausted when not even one more step of this kind would fit.
    more = steps_that_fit(
        outcome.history, noise_multiplier=sigma, sample_rate=sample_rate, wanted=1, **budget
    )
    event = {
        "round": server_round,
        "client_id": s.client_id,
        "mechanism": "dp-sgd",
        "noise_multiplier": sigma,
        "sample_rate": sample_rate,
        "steps": outcome.steps,
        "max_grad_norm": s.max_grad_norm,
        "delta": s.delta,
        "accountant": s.accountant,
        "epsilon": epsilon_of(outcome.history, accountant=s.accountant, delta=s.delta),
        "epsilon_budget": s.epsilon_budget,
    }
    ledger_path = _own_ledger_path(s, config)
    if ledger_path is not None:
        Ledger(ledger_path).append(event)
    status = "trained" if more else "trained-exhausted"
    return _reply(msg, model, outcome, s, len(data), status, event)


def _own_ledger_path(s: ClientSettings, config: ConfigRecord) -> Path | None:
    """Where this owner keeps its own ledger, always on its own machine.

    node_config's ``ledger-path``; else, for a node with its own data file, beside
    that file; else (simulation) the run's ``ledgers/`` folder that the server names.
    """
    if s.ledger_path:
        return Path(s.ledger_path)
    if s.data_path:
        return Path(s.data_path).with_name(f"fedsynth-ledger-client-{s.client_id}.jsonl")
    if config.get("ledger-dir"):
        return Path(str(config["ledger-dir"])) / f"client-{s.client_id}.jsonl"
    return None


def _reply(
    msg: Message,
    model: torch.nn.Module,
    outcome: RoundOutcome,
    s: ClientSettings,
    num_examples: int,
    status: str,
    event: dict | None,
) -> Message:
    """Weights, metrics, and the status plus (when it trained privately) the ledger event."""
    loss = outcome.mean_loss if math.isfinite(outcome.mean_loss) else 0.0
    privacy = ConfigRecord(
        {"status": status, "client_id": s.client_id, "steps": outcome.steps, **(event or {})}
    )
    metrics = {"num-examples": num_examples, "unit-weight": 1, "train-loss": loss}
    content = RecordDict(
        {
            "arrays": ArrayRecord(model.state_dict()),
            "metrics": MetricRecord(metrics),
            "privacy": privacy,
        }
    )
    return Message(content=content, reply_to=msg)

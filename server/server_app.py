"""The Flower ServerApp: sample owners, validate and aggregate their updates, keep the ledger.

A Flower strategy (:mod:`server.aggregation`) wrapped in the owner guard
(:mod:`server.owner_guard`: sampling, reply judgement, the ledger, owner-level DP)
runs each round; this module is the loop around it: each checkpoint records the
ledger's head, and the run ends cleanly (with its release and report) when no
owner can train.
"""

from __future__ import annotations

import time
from pathlib import Path

import tomli_w
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from rich.console import Console

from genai_models import build_model, resolve
from genai_models.cgan import ConditionalGAN
from privacy.atomic import write_text
from privacy.distributed_noise import SecureSumPlan, plan_for
from privacy.experiment import ConfigError, ExperimentConfig, proposal_digest
from privacy.ledger import Ledger
from privacy.signing import load_owner_keys
from server.aggregation import build_strategy
from server.checkpoints import load_latest, save_checkpoint
from server.client_dp import ClientDpSettings, ClientLevelGaussian
from server.generator_average import GeneratorAverage
from server.owner_guard import OwnerGuard, RunState, state_from_ledger
from server.release import class_shares, condition_counts, release_images, release_table
from server.replies import ReplyJudge
from server.run_dir import claim, run_dir_for, unfinished
from server.secure_round import SecureRound

app = ServerApp()
console = Console(highlight=False)

def run_federation(grid: Grid, run_config: dict, run_id: int = 0,
                   resume: bool | None = False, files: dict[str, str] | None = None) -> Path:
    """Run every round, release synthetic data and write the report; return the run dir.

    The run directory is held exclusively for the whole run (:func:`server.run_dir.claim`).
    With ``resume``, an unfinished run continues after its last checkpoint, with its own
    run id (owners re-send, never re-spend, a round they already trained) and only with
    the configuration it started with; ``None`` resumes when the directory holds an
    unfinished run (what ``flwr run`` does after a crash of the SuperLink or ServerApp).
    ``files`` (name → text) are written into a new run's directory once it is held.
    """
    settings = ExperimentConfig.parse(run_config, "run_config")
    where = run_dir_for(settings.run_dir, settings.model, settings.dataset)
    if resume is None:
        resume = unfinished(where)
    with claim(where, resume=resume) as run_dir:
        for name, text in ({} if resume else files or {}).items():
            write_text(run_dir / name, text)
        return _run(grid, settings, run_id, run_dir, resume)


def _run(grid: Grid, settings: ExperimentConfig, run_id: int, run_dir: Path,
         resume: bool) -> Path:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if resume:  # the run's own id and proposal, whoever restarts it
        _same_proposal(settings, run_dir)
        try:
            latest = load_latest(run_dir)
            run_id = int(latest["server"]["run_id"])
        except Exception as err:  # a checkpoint cut short by the crash is named
            raise ConfigError(f"run-dir: the last checkpoint of {run_dir} cannot be read "
                              f"({type(err).__name__}); delete it to resume from the one "
                              "before") from None
    spec, codec = resolve(settings.dataset, settings.schema_path)
    torch.manual_seed(settings.seed)
    model = build_model(
        settings.model, spec, hidden_dim=settings.hidden_dim, latent_dim=settings.latent_dim
    )
    arrays = ArrayRecord(model.state_dict())
    average = (GeneratorAverage(model.generator, settings.generator_average, settings.rounds)
               if isinstance(model, ConditionalGAN) else None)
    base = build_strategy(settings)
    dp_settings = ClientDpSettings.from_experiment(settings)
    owner_dp = ClientLevelGaussian(dp_settings) if dp_settings else None
    plan = _secure_plan(settings, spec)
    judge = ReplyJudge(settings, run_id,
                       load_owner_keys(settings.owner_keys) if settings.owner_keys else None,
                       plan)
    ledger = Ledger(run_dir / "ledger.jsonl")
    first = 1
    if resume:
        arrays = ArrayRecord(latest["model"])
        if average is not None and "average" in latest:  # else (an older checkpoint) the
            average.load_state_dict(latest["average"])  # average starts with the next round
        first = int(latest["round"]) + 1
        state = state_from_ledger(run_id, settings.private, ledger.entries)
        judge.remember(ledger.entries)
        if owner_dp is not None:
            released = [e["round"] for e in ledger.entries
                        if e["mechanism"] == "gaussian-aggregate"]
            owner_dp.rounds = len(released)
            if released and max(released) >= first:  # released, then lost before its
                # checkpoint: a round is released once, so the run goes on after it
                console.print(f"round {max(released)} was released but its model was lost; "
                              f"going on from round {first - 1}'s model")
                first = max(released) + 1
        state.rounds_completed = first - 1  # a run stopped after its last round: all done
        console.print(f"resuming {run_dir} after round {first - 1} (run id {run_id})")
    else:
        write_text(run_dir / "config.toml", tomli_w.dumps(settings.to_run_config()))
        ledger.path.touch()  # an empty ledger is a statement too: nothing was received (yet)
        state = RunState(run_id=run_id, private=settings.private)
        # Before any owner is asked: a run stopped in its first round resumes too.
        save_checkpoint(run_dir, 0, arrays.to_torch_state_dict(),
                        {"ledger_head": ledger.head, "ledger_lines": 0, "run_id": run_id,
                         "exhausted_nodes": []}, average and average.state_dict())
    guard = OwnerGuard(base, judge=judge, ledger=ledger, state=state,
                       fraction=settings.fraction, owner_dp=owner_dp)
    secure = plan and SecureRound(settings, plan, judge, ledger, state, run_id,
                                  build_model(settings.model, spec,
                                              hidden_dim=settings.hidden_dim,
                                              latent_dim=settings.latent_dim))
    train_config = ConfigRecord({"run-id": run_id})  # fedsynth's, kept across a resume
    conditions = settings.conditions()

    def condition_on_counts() -> None:
        # Training-by-sampling: fakes follow the owners' noisy category counts, public
        # once released; the owners read them from the round's config.
        state.condition_counts = condition_counts(ledger.entries, conditions)
        if state.condition_counts:
            train_config["condition-frequencies"] = state.condition_counts["counts"]

    condition_on_counts()
    timings["setup"] = time.perf_counter() - t0

    t_train = time.perf_counter()
    for server_round in range(first, settings.rounds + 1):
        t_round = time.perf_counter()
        messages = list(guard.configure_train(server_round, arrays, train_config, grid))
        if not guard.candidates:
            console.print(f"round {server_round}: every owner's budget is spent; stopping")
            break
        if secure:  # distributed noise: one SecAgg+ sum of every candidate's share
            new_arrays = secure.run(grid, server_round, arrays,
                                    [int(m.metadata.dst_node_id) for m in messages])
            trained = secure.accepted
        else:
            replies = (list(grid.send_and_receive(messages, timeout=settings.round_timeout))
                       if messages else [])
            new_arrays, _ = guard.aggregate_train(server_round, replies)
            trained = guard.accepted
        if new_arrays is not None:
            arrays = new_arrays
        weights = arrays.to_torch_state_dict()
        if average is not None:  # every round, a kept model too (its weight in the path)
            model.load_state_dict(weights)
            average.update(model.generator, server_round)
        condition_on_counts()
        state.rounds_completed = server_round
        state.ledger_head, state.ledger_lines = ledger.head, len(ledger.entries)
        save_checkpoint(
            run_dir,
            server_round,
            weights,
            {"ledger_head": ledger.head, "ledger_lines": len(ledger.entries), "run_id": run_id,
             "exhausted_nodes": sorted(state.exhausted_nodes)},
            average and average.state_dict(),
        )
        _progress(settings, state, server_round, trained, time.perf_counter() - t_round)
        # Every owner must join the first round; later rounds go on with those still
        # connected, so a node that disappears does not stall the federation.
        base.min_available_nodes = base.min_train_nodes = 1
    timings["training"] = time.perf_counter() - t_train

    t_release = time.perf_counter()
    model.load_state_dict(arrays.to_torch_state_dict())
    if average is not None:
        if average.models:
            model.generator.load_state_dict(average.weights())
        state.released_model = average.describe()
    state.class_shares = None if not settings.releases_counts else class_shares(ledger.entries,
                                                                     spec.num_classes)
    shares = state.class_shares["shares"] if state.class_shares else None
    if isinstance(model, ConditionalGAN):
        model.condition_on(state.condition_counts["counts"] if state.condition_counts else None)
    release = release_images if codec is None else release_table
    release(model, spec if codec is None else codec, settings.synthetic_samples, settings.seed,
            run_dir / "synthetic", shares)
    timings["release"] = time.perf_counter() - t_release

    # Judging the release lives in simulations/ (it needs the public holdout);
    # the ServerApp calls it so that `flwr run .` ends with the same report.
    from simulations.report import finish_run

    finish_run(run_dir, settings, state, timings)
    return run_dir


def _secure_plan(settings: ExperimentConfig, spec) -> SecureSumPlan | None:
    """Distributed noise: the public plan of the proposal (refused before anyone is asked)."""
    if not settings.distributed:
        return None
    try:
        return plan_for(settings, spec)
    except ValueError as err:  # NoiseTooSmall, or no noise fits the proposal
        raise ConfigError(f"noise=distributed is not allowed for this proposal: {err}") from None


def _same_proposal(settings: ExperimentConfig, run_dir: Path) -> None:
    """A run resumes only with the proposal its owners signed (its config.toml)."""
    where = run_dir / "config.toml"
    try:
        started = ExperimentConfig.parse(ExperimentConfig.read_toml(where), str(where))
    except (OSError, ConfigError) as err:
        raise ConfigError(f"run-dir: {run_dir} holds an unfinished run whose config.toml "
                          f"cannot be read ({err}); choose a new directory") from None
    if proposal_digest(started) != proposal_digest(settings):
        differ = [k for k, v in started.to_run_config().items()
                  if settings.to_run_config()[k] != v]
        raise ConfigError(f"run-dir: {run_dir} holds an unfinished run with another "
                          f"configuration ({', '.join(differ)} differ from its config.toml); "
                          "resume it with the same run config, or choose a new directory")


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
    run_federation(grid, dict(context.run_config), context.run_id, resume=None)

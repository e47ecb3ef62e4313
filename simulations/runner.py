"""Run the federation on Flower's Simulation Engine, in process, with a bound configuration.

``flwr run .`` reads the experiment from ``context.run_config``; here the same
ServerApp and ClientApp functions get the validated configuration directly, so
``fedsynth simulate`` needs no pyproject on disk and leaves no SuperLink behind.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import warnings
from pathlib import Path

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from client.client_app import handle_train, secure_sum_gate
from privacy.experiment import ConfigError, ExperimentConfig
from privacy.policy import OwnerPolicy
from privacy.signing import Signer
from server.server_app import run_federation


def simulate(config: ExperimentConfig, policies: list[OwnerPolicy], *,
             verbose: bool = False, resume_run_id: int | None = None,
             files: dict[str, str] | None = None) -> Path:
    """Run ``config`` with one virtual SuperNode per owner; return the run directory.

    ``policies[i]`` is what owner i's node_config states (the user speaks for every
    simulated owner); the ClientApp reads it exactly as it reads a real node's. The run
    id is fedsynth's own (the ServerApp sends it with every train message), so that a
    run resumed (``resume_run_id``) is the same run to the owners (Flower's changes per
    start).
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    from flwr.simulation import run_simulation

    from simulations.message_delivery import deliver_only_to_waiting_nodes

    deliver_only_to_waiting_nodes()

    config = _register_owner_keys(config, policies)
    run_config = config.to_run_config()
    run_id = resume_run_id if resume_run_id is not None else secrets.randbits(63)
    run_dir: list[Path] = []
    refused: list[ConfigError] = []

    server_app = ServerApp()

    @server_app.main()
    def _main(grid: Grid, context: Context) -> None:
        try:
            run_dir.append(run_federation(grid, run_config, run_id,
                                          resume=resume_run_id is not None, files=files))
        except ConfigError as err:  # e.g. the run directory is taken: the user's to fix
            refused.append(err)

    client_app = ClientApp()

    def configs(context: Context) -> tuple[dict, dict]:
        owner = policies[int(context.node_config["partition-id"])]
        return run_config, owner.to_node_config()

    @client_app.train(mods=[secure_sum_gate(configs)])
    def _train(msg: Message, context: Context) -> Message:
        return handle_train(msg, context, *configs(context))

    if not verbose:
        logging.getLogger("flwr").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        run_simulation(
            server_app=server_app,
            client_app=client_app,
            num_supernodes=config.num_clients,
            backend_config={
                "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                "init_args": {"logging_level": "ERROR", "log_to_driver": verbose},
            },
            verbose_logging=verbose,
        )
    if refused:
        raise refused[0]
    if not run_dir:
        raise RuntimeError("the simulation ended without finishing the run (see the log above)")
    return run_dir[0]


def _register_owner_keys(config: ExperimentConfig, policies: list[OwnerPolicy]):
    """Each simulated owner makes its signing key; the coordinator gets the public halves.

    In a deployment each owner runs ``fedsynth certs`` (or lets its SuperNode make
    the key on first use) and hands ``owner-N.pub`` to the coordinator, the way its
    node key is registered; here the user stands for every owner.
    """
    for policy in policies:
        Signer.load_or_create(policy.signing_key)
    folders = {str(Path(p.signing_key).parent) for p in policies}
    if config.owner_keys or len(folders) != 1:
        return config
    return dataclasses.replace(config, owner_keys=folders.pop())

"""Checkpoints: the global model and the server's state after each round, written atomically."""

from __future__ import annotations

from pathlib import Path

import torch

from privacy.atomic import write_with


def save_checkpoint(run_dir: Path, server_round: int, state_dict: dict, server_state: dict,
                    average: dict | None = None) -> Path:
    """Write ``checkpoints/round-NNN.pt`` holding the model and the server's state.

    ``average``: the GAN's generator average so far (:mod:`server.generator_average`).
    """
    path = run_dir / "checkpoints" / f"round-{server_round:03d}.pt"
    payload = {"round": server_round, "model": state_dict, "server": server_state}
    if average is not None:
        payload["average"] = average
    return write_with(path, lambda handle: torch.save(payload, handle))


def checkpoint_paths(run_dir: Path) -> list[Path]:
    """A run's checkpoints, oldest round first (round-1000 after round-999)."""
    return sorted((run_dir / "checkpoints").glob("round-*.pt"), key=_round_of)


def load_latest(run_dir: Path) -> dict | None:
    """The newest checkpoint of a run, or None when there is none."""
    paths = checkpoint_paths(run_dir)
    if not paths:
        return None
    return torch.load(paths[-1], weights_only=True)


def _round_of(path: Path) -> int:
    """The round a checkpoint's name holds (round-1000 after round-999); -1 for a stray name."""
    number = path.stem.removeprefix("round-")
    return int(number) if number.isdigit() else -1

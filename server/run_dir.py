"""Where a run writes, and holding it: one rule for the CLI and the ServerApp."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from privacy.experiment import ConfigError


def run_dir_for(run_dir: str, model: str, dataset: str) -> Path:
    """The run directory: as configured, or ``runs/<UTC timestamp>-<model>-<dataset>``."""
    if run_dir:
        return Path(run_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("runs") / f"{stamp}-{model}-{dataset}"


# What a run writes into its directory; any of them there means another run was here.
ARTIFACTS = ("config.toml", "ledger.jsonl", "report.json", "checkpoints", "synthetic")


def unfinished(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a run that stopped after a checkpoint and before its report."""
    return (any((run_dir / "checkpoints").glob("round-*.pt"))
            and not (run_dir / "report.json").exists())


class RunDirBusy(ConfigError):
    """A run directory that another run holds or already wrote into; the message says which."""


@contextlib.contextmanager
def claim(run_dir: Path, resume: bool = False) -> Iterator[Path]:
    """Hold ``run_dir`` exclusively for one run, whatever started it.

    An exclusive, non-blocking ``flock`` on ``RUN_DIR/.fedsynth-run.lock`` is held for
    the whole run (the OS releases it if the process dies), and a directory that
    already holds a run's artifacts is refused: a second run can neither interleave
    with a live one nor overwrite a finished one. ``resume`` continues an unfinished
    run instead: its checkpoints must be there and its report must not.
    """
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(run_dir / ".fedsynth-run.lock", "a+b")  # noqa: SIM115 (held below)
    except OSError as err:
        raise ConfigError(f"run-dir: {run_dir} cannot be created or written "
                          f"({err.strerror}); choose another directory") from None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirBusy(f"run-dir: {run_dir} is in use by another run; choose another "
                             "directory") from None
        found = [name for name in ARTIFACTS if (run_dir / name).exists()]
        if resume:
            if not list((run_dir / "checkpoints").glob("round-*.pt")):
                raise ConfigError(f"--resume: {run_dir} has no checkpoint to resume from")
            if (run_dir / "report.json").exists():
                raise RunDirBusy(f"--resume: {run_dir} is a finished run (report.json)")
        elif found:
            raise RunDirBusy(f"run-dir: {run_dir} already holds a run ({', '.join(found)}); "
                             "choose a new directory")
        try:
            yield run_dir
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

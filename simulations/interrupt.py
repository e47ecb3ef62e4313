"""What one Ctrl-C does to a simulation: stop now, leave nothing running, say how to go on.

Every artifact of a run is written atomically and each round ends in a checkpoint, so the
run directory is consistent at any instant; the handler kills every process the
simulation started (Ray's workers and daemons), says how to resume, and exits 130
without waiting on Ray's own shutdown (which can take a minute).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

import psutil


def stop_on_interrupt(run_dir: Path) -> None:
    """Install the SIGINT/SIGTERM handler for a simulation writing ``run_dir``."""

    def handler(signum, frame):
        print(f"\nfedsynth: interrupted; {run_dir} holds the run up to its last checkpoint. "
              f"Continue with: fedsynth simulate --resume {run_dir}", file=sys.stderr,
              flush=True)
        children = psutil.Process().children(recursive=True)
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        psutil.wait_procs(children, timeout=3)
        os._exit(128 + signum)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)

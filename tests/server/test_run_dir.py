"""One run per run directory, whatever starts it: held while it runs, never overwritten."""

import pytest

from privacy.experiment import ConfigError
from server.run_dir import RunDirBusy, claim
from server.server_app import run_federation


def _enter(path):
    with claim(path):
        pass


def test_a_second_run_into_a_live_run_directory_is_refused(tmp_path):
    with claim(tmp_path / "run"), pytest.raises(RunDirBusy, match="is in use by another run"):
        _enter(tmp_path / "run")
    _enter(tmp_path / "run")  # released when the first run ends


def test_a_finished_run_is_never_written_over(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "ledger.jsonl").write_text("")
    with pytest.raises(RunDirBusy, match=r"already holds a run \(ledger.jsonl\)"):
        _enter(tmp_path / "run")
    # The ServerApp's path (flwr run) refuses before it touches the grid.
    with pytest.raises(RunDirBusy, match="already holds a run"):
        run_federation(None, {"run-dir": str(tmp_path / "run")})


def test_a_run_directory_under_a_file_is_a_usage_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="cannot be created or written"):
        _enter(tmp_path / "file" / "run")

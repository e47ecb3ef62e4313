"""The ServerApp validates the proposal with the same rules as the CLI, before anything runs."""

import pytest

from privacy.experiment import ConfigError, ExperimentConfig
from server.server_app import run_federation


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"client-dp": "fixed"}, "server-momentum=0.5 is not allowed; expected 0 with --client-dp"),
        ({"rounds": 2.5}, "run_config: rounds=2.5 must be a whole number"),
        ({"epsilon": True}, "run_config: epsilon=True must be float"),
        ({"sample-rate": 2.0}, "sample-rate=2.0 is not allowed"),
    ],
)
def test_a_bad_proposal_stops_the_server_before_any_round(tmp_path, change, expected):
    run = ExperimentConfig(run_dir=str(tmp_path / "run")).to_run_config() | change
    with pytest.raises(ConfigError, match=expected):
        run_federation(None, run)  # no grid: it must fail before using one
    assert not (tmp_path / "run").exists()

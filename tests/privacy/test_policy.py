"""The owner's policy: read from node_config once, with conservative defaults and clear errors."""

import pytest

from privacy.experiment import ConfigError
from privacy.policy import DEFAULT_EPSILON_BUDGET, DEFAULT_MAX_DELTA, OwnerPolicy


def test_a_bare_node_gets_the_conservative_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDSYNTH_HOME", str(tmp_path))
    policy = OwnerPolicy.from_node_config({"partition-id": 2, "num-partitions": 5})
    assert policy.epsilon_budget == DEFAULT_EPSILON_BUDGET == 1.0
    assert policy.max_delta == DEFAULT_MAX_DELTA and not policy.allow_nonprivate
    assert policy.max_records == 10_000  # P6 holds for the defaults: 1e-5 x 10,000 < 1
    # Distributed noise: one other owner may be the coordinator's, unless the owner says not.
    assert policy.max_colluders_assumed == 1
    assert policy.client_id == 2
    assert policy.ledger_path == str(tmp_path / "ledgers" / "partition-2.jsonl")


def test_the_ledger_lives_beside_the_owners_data_file(tmp_path):
    data = tmp_path / "owner.npz"
    policy = OwnerPolicy.from_node_config({"data-path": str(data), "client-id": 4})
    assert policy.ledger_path == str(tmp_path / "owner.npz.fedsynth-ledger.jsonl")
    assert policy.partition_id is None and policy.client_id == 4


def test_a_policy_round_trips_through_node_config(tmp_path):
    node = {"client-id": 1, "partition-id": 1, "num-partitions": 3, "epsilon-budget": 2.5,
            "max-delta": 1e-6, "allow-nonprivate": True,
            "ledger-path": str(tmp_path / "l.jsonl"), "data-path": "", "schema-path": ""}
    policy = OwnerPolicy.from_node_config(node)
    assert OwnerPolicy.from_node_config(policy.to_node_config()) == policy


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ({"epsilon-budget": "inf"}, "epsilon-budget=inf is not allowed; expected a finite"),
        ({"epsilon-budget": 0}, "epsilon-budget=0.0 is not allowed"),
        ({"max-delta": 1.5}, "max-delta=1.5 is not allowed; expected a number in (0, 1)"),
        ({"max-delta": 1e-4}, "max-delta=0.0001 is not allowed; expected a number below "
                              "1/max-records = 0.0001 (P6"),
        ({"max-records": 0}, "max-records=0 is not allowed; expected an integer in 1..10^12"),
        ({"allow-nonprivate": 1}, "allow-nonprivate=1 must be true or false"),
        ({"epsilon-budget": True}, "epsilon-budget=True must be float"),
        ({"partition-id": 3}, "partition-id and num-partitions go together"),
        ({"partition-id": 3, "num-partitions": 3}, "partition-id=3 is not allowed"),
    ],
)
def test_bad_node_config_is_one_line_naming_the_key(node, expected):
    with pytest.raises(ConfigError) as err:
        OwnerPolicy.from_node_config({"data-path": "/d.npz", **node})
    assert expected in str(err.value) and str(err.value).startswith("node_config: ")

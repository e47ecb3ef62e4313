"""The owner guard as Flower tests its strategies: fake grid, fake replies, no simulation."""

from types import SimpleNamespace

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, RecordDict

from privacy.experiment import ExperimentConfig
from privacy.ledger import Ledger, canonical, read_ledger
from privacy.signing import Signer, load_owner_keys, public_text
from server.aggregation import build_strategy
from server.client_dp import ClientDpSettings, ClientLevelGaussian
from server.owner_guard import OwnerGuard, RunState
from server.replies import ReplyJudge

RUN_ID = 3


class FakeGrid:
    """What FedAvg's configure_train asks of a grid: the connected node ids."""

    def __init__(self, nodes):
        self.nodes = nodes

    def get_node_ids(self):  # noqa: D102
        return self.nodes


def _settings(**change):
    return ExperimentConfig(**{"num_clients": 3, "rounds": 2, "server_momentum": 0.0, **change})


def _guard(tmp_path, settings, owner_dp=None):
    keys = load_owner_keys(tmp_path / "keys")
    state = RunState(run_id=RUN_ID)
    ledger = Ledger(tmp_path / "ledger.jsonl")
    guard = OwnerGuard(build_strategy(settings), judge=ReplyJudge(settings, RUN_ID, keys),
                       ledger=ledger, state=state, fraction=settings.fraction, owner_dp=owner_dp)
    return guard, state, ledger


@pytest.fixture(autouse=True)
def serverapp_identity(monkeypatch):
    """What Flower sets in a ServerApp process before a strategy builds messages."""
    from flwr.supercore.task_identity import TaskIdentity

    monkeypatch.setattr(TaskIdentity, "_run_id", RUN_ID)
    monkeypatch.setattr(TaskIdentity, "_node_id", 0)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)


@pytest.fixture
def owners(tmp_path):
    out = {}
    for cid in range(5):
        signer = Signer.load_or_create(tmp_path / "keys" / f"owner-{cid}.key")
        out[cid] = Ledger(tmp_path / f"client-{cid}.jsonl", verify=True, signer=signer)
    return out


def _reply(owner: Ledger, settings, cid, rnd, weights, node=None, exhausted=False):
    entry = owner.append({
        "round": rnd, "client_id": cid, "run_id": RUN_ID, "mechanism": "dp-sgd",
        "noise_multiplier": 1.0, "sample_rate": settings.sample_rate, "steps": 2,
        "max_grad_norm": settings.max_grad_norm, "delta": settings.delta,
        "accountant": settings.accountant, "epsilon": 1.0, "lifetime_epsilon": 1.0,
        "epsilon_budget": 8.0, "exhausted": exhausted})
    record = {"status": "trained-exhausted" if exhausted else "trained", "client_id": cid,
              "entry": canonical(entry),
              "public_key": public_text(owner.signer.key.public_key()).decode().strip()}
    content = RecordDict({"privacy": ConfigRecord(record),
                          "arrays": ArrayRecord({"w": torch.tensor(weights)})})
    return SimpleNamespace(content=content, metadata=SimpleNamespace(src_node_id=node or cid + 10),
                           has_error=lambda: False)


def _garbage(node):
    return SimpleNamespace(content=RecordDict({"privacy": ConfigRecord({"status": "trained"})}),
                           metadata=SimpleNamespace(src_node_id=node), has_error=lambda: False)


MODEL = ArrayRecord({"w": torch.zeros(2)})


def test_configure_drops_exhausted_owners_and_samples_the_rest(tmp_path, owners):
    guard, state, _ = _guard(tmp_path, _settings())
    state.exhausted_nodes.add(11)
    sent = list(guard.configure_train(1, MODEL, ConfigRecord({}), FakeGrid([10, 11, 12])))
    assert sorted(m.metadata.dst_node_id for m in sent) == [10, 12] and guard.candidates == 2
    sampled, _, _ = _guard(tmp_path, _settings(fraction=0.3))
    counts = [len(list(sampled.configure_train(1, MODEL, ConfigRecord({}),
                                               FakeGrid(list(range(100)))))) for _ in range(20)]
    assert 20 < sum(counts) / 20 < 40  # about 30 of 100, each round drawn afresh


def test_every_reply_is_ledgered_and_only_accepted_ones_are_averaged(tmp_path, owners):
    s = _settings()
    guard, state, ledger = _guard(tmp_path, s)
    guard.configure_train(1, MODEL, ConfigRecord({}), FakeGrid([10, 11, 12]))
    replies = [_reply(owners[0], s, 0, 1, [1.0, 1.0]), _reply(owners[1], s, 1, 1, [3.0, 3.0]),
               _garbage(12)]
    arrays, metrics = guard.aggregate_train(1, replies)
    assert arrays.to_torch_state_dict()["w"].tolist() == pytest.approx([2.0, 2.0])
    assert metrics["accepted"] == 2
    lines = read_ledger(ledger.path)
    assert [e["verdict"] for e in lines] == ["accepted", "accepted", "rejected"]
    assert state.owners[0].epsilon == 1.0 and state.rejected


def test_a_trained_exhausted_owner_is_not_asked_again(tmp_path, owners):
    s = _settings(num_clients=2)
    guard, state, _ = _guard(tmp_path, s)
    guard.configure_train(1, MODEL, ConfigRecord({}), FakeGrid([10, 11]))
    guard.aggregate_train(1, [_reply(owners[0], s, 0, 1, [1.0, 1.0], exhausted=True)])
    sent = guard.configure_train(2, MODEL, ConfigRecord({}), FakeGrid([10, 11]))
    assert [m.metadata.dst_node_id for m in sent] == [11]


@pytest.mark.parametrize("aggregation, n", [("median", 3), ("trimmed-mean", 5), ("krum", 4)])
def test_robust_aggregation_resists_one_scaled_update(tmp_path, owners, aggregation, n):
    s = _settings(aggregation=aggregation, num_clients=n)
    guard, _, _ = _guard(tmp_path, s)
    guard.configure_train(1, MODEL, ConfigRecord({}), FakeGrid(list(range(10, 10 + n))))
    replies = [_reply(owners[i], s, i, 1, [1.0 + 0.1 * i] * 2) for i in range(n - 1)]
    replies.append(_reply(owners[n - 1], s, n - 1, 1, [1e6, 1e6]))
    arrays, _ = guard.aggregate_train(1, replies)
    assert arrays.to_torch_state_dict()["w"].abs().max() < 10


def test_fedavg_counts_a_scaled_update_only_up_to_what_dp_steps_can_move(tmp_path, owners):
    s = _settings()
    guard, state, ledger = _guard(tmp_path, s)
    guard.configure_train(1, MODEL, ConfigRecord({}), FakeGrid([10, 11, 12]))
    replies = [_reply(owners[0], s, 0, 1, [1.0, 1.0]), _reply(owners[1], s, 1, 1, [1.0, 1.0]),
               _reply(owners[2], s, 2, 1, [1e6, 1e6])]
    arrays, _ = guard.aggregate_train(1, replies)
    bound = read_ledger(ledger.path)[2]["update_bound"]
    assert arrays.to_torch_state_dict()["w"].tolist() == pytest.approx(
        [(2 + bound / 2**0.5) / 3] * 2, rel=1e-5)
    assert [e["clipped"] for e in read_ledger(ledger.path)] == [False, False, True]
    assert state.clipped == [f"round 1: owner 2: norm 1.414e+06 > bound {bound:.4g}"]


def test_owner_level_dp_releases_even_when_no_reply_counts(tmp_path, owners):
    s = _settings(client_dp="fixed", client_noise=1.0, num_clients=1, client_delta=1e-3)
    gaussian = ClientLevelGaussian(ClientDpSettings.from_experiment(s))
    guard, state, ledger = _guard(tmp_path, s, owner_dp=gaussian)
    guard.configure_train(1, MODEL, ConfigRecord({}), FakeGrid([10]))
    arrays, _ = guard.aggregate_train(1, [_garbage(10)])
    assert arrays is not None and state.client_level_epsilon > 0
    assert [e["mechanism"] for e in read_ledger(ledger.path)] == ["none", "gaussian-aggregate"]


def test_robust_aggregation_is_refused_with_owner_level_dp():
    from privacy.experiment import ConfigError

    with pytest.raises(ConfigError, match="aggregation='median' is not allowed; expected fedavg"):
        _settings(aggregation="median", client_dp="fixed").validate()
    with pytest.raises(ConfigError, match="server-momentum=0.5 is not allowed"):
        ExperimentConfig(aggregation="krum").validate()


def test_silent_nodes_are_named_and_an_error_for_a_vanished_node_is_its_own(tmp_path, owners):
    s = _settings()
    guard, state, ledger = _guard(tmp_path, s)
    sent = list(guard.configure_train(1, MODEL, ConfigRecord({}), FakeGrid([10, 11, 12])))
    for m in sent:  # what the grid does when it sends them
        m.metadata.__dict__["_message_id"] = f"m{m.metadata.dst_node_id}"
    vanished = SimpleNamespace(  # the SuperLink (node 1) answers for the node it lost
        content=RecordDict(), has_error=lambda: True,
        error=SimpleNamespace(reason="Node Unavailable"),
        metadata=SimpleNamespace(src_node_id=1, reply_to_message_id="m11"))
    guard.aggregate_train(1, [_reply(owners[0], s, 0, 1, [1.0, 1.0]), vanished])
    lines = read_ledger(ledger.path)
    assert lines[1]["node_id"] == 11 and "Node Unavailable" in lines[1]["reason"]
    assert state.rejected[-1] == "round 1: node 12: no reply within the round timeout"
    assert len(state.rejected) == 2

"""Invariants P3 (epsilon accumulates across rounds through context.state), P4 and P6."""

import math

import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict

from client.client_app import train_round
from genai_models import DIGITS, build_model
from privacy.experiment import ExperimentConfig
from simulations.accounting import recompute_epsilon

RUN = ExperimentConfig(num_clients=3, rounds=3, hidden_dim=16, latent_dim=2).to_run_config()


def _message(server_round: int) -> Message:
    model = build_model("vae", DIGITS, hidden_dim=16, latent_dim=2)
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()),
                          "config": ConfigRecord({"server-round": server_round})})
    return Message(content=content, dst_node_id=7, message_type=MessageType.TRAIN)


def _context(**node) -> Context:
    node_config = {"partition-id": 0, "num-partitions": 3, **node}
    return Context(run_id=1, node_id=7, node_config=node_config, state=RecordDict(),
                   run_config={})


def _events(context, rounds, run=RUN):
    out = []
    for r in range(1, rounds + 1):
        reply = train_round(_message(r), context, run)
        out.append(dict(reply.content["privacy"]))
    return out


def test_epsilon_accumulates_and_matches_independent_recomputation(task_identity):
    context = _context()
    events = _events(context, 2)
    assert events[1]["epsilon"] > events[0]["epsilon"] > 0
    for k, event in enumerate(events, start=1):
        independent = recompute_epsilon(events[:k], delta=1e-5, method="rdp")
        assert event["epsilon"] == pytest.approx(independent, rel=0.01)
    # A fresh ClientApp call with the same context resumes, it does not restart.
    assert "fedsynth-privacy" in context.state


def test_budget_is_never_exceeded_and_the_owner_then_declines(task_identity):
    run = {**RUN, "epsilon": 1.0, "rounds": 1, "local-epochs": 1}
    tight = {**run, "rounds": 1}
    context = _context()
    events = _events(context, 4, run={**tight, "local-epochs": 3})
    spent = [e["epsilon"] for e in events if "epsilon" in e]
    assert spent and max(spent) <= 1.0
    assert events[-1]["status"] == "exhausted" and events[-1]["steps"] == 0


def test_node_budget_overrides_the_federation_default(task_identity):
    events = _events(_context(**{"epsilon-budget": 2.0}), 1)
    assert events[0]["epsilon_budget"] == 2.0
    assert events[0]["epsilon"] <= 2.0


def test_delta_too_large_for_the_owner_is_refused(task_identity):
    with pytest.raises(ValueError, match="delta=0.1 must be below 1/"):
        _events(_context(), 1, run={**RUN, "delta": 0.1})


def test_nonprivate_baseline_reports_no_epsilon(task_identity):
    events = _events(_context(), 1, run={**RUN, "epsilon": math.inf})
    assert events[0]["status"] == "nonprivate" and "epsilon" not in events[0]


def test_run_budgets_table_sets_one_owner_budget(task_identity):
    events = _events(_context(), 1, run={**RUN, "budgets": "0=3.0,2=5"})
    assert events[0]["epsilon_budget"] == 3.0 and events[0]["epsilon"] <= 3.0


def test_owner_keeps_its_own_chained_ledger(task_identity, tmp_path):
    from privacy.ledger import GENESIS, entry_hash

    path = tmp_path / "mine.jsonl"
    events = _events(_context(**{"ledger-path": str(path)}), 2)
    import json

    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["round"] for x in lines] == [1, 2]
    assert lines[0]["prev_hash"] == GENESIS and lines[1]["prev_hash"] == lines[0]["hash"]
    assert all(entry_hash(x) == x["hash"] for x in lines)
    assert lines[1]["epsilon"] == events[1]["epsilon"]

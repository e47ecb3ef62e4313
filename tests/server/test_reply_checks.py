"""Reply checks with fake replies, no simulation: what the coordinator refuses to count."""

from types import SimpleNamespace

import torch
from flwr.app import ArrayRecord, ConfigRecord, RecordDict

from server.server_app import RunState, _reject


def _reply(privacy: dict, node=5, arrays=True):
    content = RecordDict({"privacy": ConfigRecord(privacy)})
    if arrays:
        content["arrays"] = ArrayRecord({"w": torch.zeros(2)})
    return SimpleNamespace(content=content, metadata=SimpleNamespace(src_node_id=node))


GLOBAL = {"w": torch.zeros(2)}


def test_a_nonprivate_update_in_a_private_run_is_rejected():
    reply = _reply({"status": "nonprivate", "client_id": 0, "steps": 3})
    assert _reject(reply, GLOBAL, RunState(private=True)) == "trained without DP in a private run"
    assert _reject(reply, GLOBAL, RunState(private=False)) is None


def test_refusals_count_as_refusals_and_owners_cannot_switch_identity():
    state = RunState()
    assert _reject(_reply({"status": "refused", "client_id": 1, "reason": "x"}, arrays=False),
                   GLOBAL, state) is None
    why = _reject(_reply({"status": "refused", "client_id": 2, "reason": "x"}, arrays=False),
                  GLOBAL, state)
    assert why == "claims owner 2, but spoke for owner 1 before"


def test_a_private_update_without_its_event_is_rejected():
    why = _reject(_reply({"status": "trained", "client_id": 0, "steps": 3}), GLOBAL, RunState())
    assert why.startswith("privacy event lacks round, run_id")

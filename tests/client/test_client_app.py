"""The owner's policy wins (P10), its ledger is the truth across calls and runs (P3, P4), P6.

The ClientApp is called the way Flower calls it: a Message, a Context whose
node_config is the owner's policy, and the coordinator's run config.
"""

import json
import math
import threading

import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict

from client.client_app import train_round
from genai_models import DIGITS, build_model
from privacy.experiment import ExperimentConfig
from privacy.ledger import GENESIS, entry_hash, read_ledger
from simulations.accounting import recompute_epsilon

RUN = ExperimentConfig(num_clients=3, rounds=3, hidden_dim=16, latent_dim=2).to_run_config()


def _message(server_round: int, spec=DIGITS) -> Message:
    model = build_model("vae", spec, hidden_dim=16, latent_dim=2)
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()),
                          "config": ConfigRecord({"server-round": server_round})})
    return Message(content=content, dst_node_id=7, message_type=MessageType.TRAIN)


def _node(tmp_path, **policy):
    return {"partition-id": 0, "num-partitions": 3, "epsilon-budget": 8.0,
            "ledger-path": str(tmp_path / "owner-0.jsonl"), **policy}


def _call(node, server_round=1, run=RUN, run_id=1):
    context = Context(run_id=run_id, node_id=7, node_config=node, state=RecordDict(),
                      run_config={})
    return train_round(_message(server_round), context, run, node)


def _privacy(reply):
    """The reply's privacy record with the owner's signed event unpacked into it."""
    record = dict(reply.content["privacy"])
    return {**record, **json.loads(record["entry"])} if "entry" in record else record


def _ledger(tmp_path):
    return read_ledger(tmp_path / "owner-0.jsonl")


@pytest.fixture(autouse=True)
def _identity(task_identity):
    yield


def test_epsilon_accumulates_and_matches_independent_recomputation(tmp_path):
    node = _node(tmp_path)
    events = [_privacy(_call(node, r)) for r in (1, 2)]
    assert events[1]["epsilon"] > events[0]["epsilon"] > 0
    for k, event in enumerate(events, start=1):
        independent = recompute_epsilon(events[:k], delta=1e-5, method="rdp")
        assert event["epsilon"] == pytest.approx(independent, rel=0.01)
    assert events[1]["lifetime_epsilon"] == events[1]["epsilon"]


def test_the_ledger_is_rebuilt_on_every_call_so_a_restart_forgets_nothing(tmp_path):
    """P3: each call is a fresh Context (as after a SuperNode restart): spend still adds up."""
    node = _node(tmp_path)
    first = _privacy(_call(node, 1))
    second = _privacy(_call(node, 2))  # a new Context: nothing in memory
    assert second["epsilon"] > first["epsilon"]
    lines = _ledger(tmp_path)
    assert [x["round"] for x in lines] == [1, 2]
    assert lines[0]["prev_hash"] == GENESIS and lines[1]["prev_hash"] == lines[0]["hash"]
    assert all(entry_hash(x) == x["hash"] for x in lines)


def test_a_second_run_continues_the_lifetime_budget_and_never_passes_it(tmp_path):
    node = _node(tmp_path, **{"epsilon-budget": 3.0})
    spent = []
    # Run 1 asks for 2 of the lifetime 3; runs 2 and 3 ask for 3: each gets what is left.
    for run_id, proposed in ((1, 2.0), (2, 3.0), (3, 3.0)):
        for r in (1, 2):
            spent.append(_privacy(_call(node, r, {**RUN, "epsilon": proposed, "rounds": 2},
                                        run_id)))
    trained = [e for e in spent if e["status"].startswith("trained")]
    assert trained and max(e["lifetime_epsilon"] for e in trained) <= 3.0
    assert spent[-1]["status"] == "exhausted" and spent[-1]["mechanism"] == "none"
    # Run 2 started where run 1 stopped, not at zero.
    first_of_run_2 = next(e for e in trained if e["run_id"] == 2)
    assert first_of_run_2["lifetime_epsilon"] > first_of_run_2["epsilon"]
    history = [e for e in _ledger(tmp_path) if e["mechanism"] == "dp-sgd"]
    assert recompute_epsilon(history, delta=1e-5, method="pld") <= 3.0 * 1.001
    refusals = [e for e in _ledger(tmp_path) if e["mechanism"] == "none"]
    assert refusals and refusals[-1]["reason"] == "the privacy budget is spent"


def test_the_coordinator_cannot_raise_the_budget_or_delta(tmp_path):
    node = _node(tmp_path, **{"epsilon-budget": 2.0})
    event = _privacy(_call(node, 1, {**RUN, "epsilon": 50.0}))
    assert event["epsilon_budget"] == 2.0 and event["lifetime_epsilon"] <= 2.0
    refused = _privacy(_call(node, 2, {**RUN, "delta": 1e-3}))
    assert refused["status"] == "refused"
    assert refused["reason"] == "delta=0.001 was proposed; this owner accepts at most 1e-05"
    assert "arrays" not in _call(node, 3, {**RUN, "delta": 1e-3}).content
    assert _ledger(tmp_path)[-1]["reason"] == refused["reason"]


def test_no_dp_needs_the_owners_opt_in(tmp_path):
    refused = _privacy(_call(_node(tmp_path), 1, {**RUN, "epsilon": math.inf}))
    assert refused["status"] == "refused" and "does not allow non-private" in refused["reason"]
    allowed = _call(_node(tmp_path, **{"allow-nonprivate": True}), 2,
                    {**RUN, "epsilon": math.inf})
    assert _privacy(allowed)["status"] == "nonprivate" and "arrays" in allowed.content
    assert "trained without DP" in _ledger(tmp_path)[-1]["reason"]


def test_p6_is_judged_on_the_declared_records_so_no_reply_depends_on_the_count(tmp_path, caplog):
    """P6 on the owner's policy alone: no reply moves with the delta or the record count."""
    invalid = _node(tmp_path, **{"max-delta": 0.5})  # 0.5 x the default 10,000 records
    replies = [_privacy(_call(invalid, r, {**RUN, "delta": d}))
               for r, d in enumerate((1e-6, 1e-3, 0.1, 0.4), start=1)]
    assert {(r["status"], r["reason"]) for r in replies} == \
        {("failed", "the owner's node_config is invalid")}
    # An owner that holds more records (~125 here) than it declared trains like one
    # within its declaration; only its own log says so, and only when P6 breaks.
    within = _privacy(_call(_node(tmp_path, **{"max-records": 50}), 1))
    assert within["status"] == "trained" and "P6 does not hold" not in caplog.text
    broken = _privacy(_call(_node(tmp_path, **{"max-records": 50, "max-delta": 0.01}), 2,
                            {**RUN, "delta": 0.01}))
    assert broken["status"] == "trained"
    assert "P6 does not hold: it holds" in caplog.text and "max-records 50" in caplog.text
    # The owner's own audit says so too, from a note that never leaves its machine.
    from simulations.audit import audit_ledger_file

    found = audit_ledger_file(tmp_path / "owner-0.jsonl").findings
    assert any("P6 does not hold for this owner" in f and "max-records 50" in f
               for f in found)


def test_a_failure_after_reading_records_stops_the_owner_until_its_operator_clears_it(
        tmp_path, monkeypatch):
    """Asked again, a failure (out of memory on a large batch) would be a free oracle."""
    import client.client_app as owner
    from simulations.audit import audit_ledger_file

    def out_of_memory(*args, **kwargs):
        raise MemoryError("a batch too large")

    node = _node(tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(owner, "train_private", out_of_memory)
        assert _privacy(_call(node, 1))["reason"] == owner.FAILED
    again = [_privacy(_call(node, r, {**RUN, "hidden-dim": 8})) for r in (1, 2)]
    assert {(r["status"], r["reason"]) for r in again} == {("failed", owner.STOPPED)}
    stopped = tmp_path / "owner-0.jsonl.stopped"
    assert "MemoryError" in stopped.read_text()
    assert any("stopped after a failed round" in f
               for f in audit_ledger_file(tmp_path / "owner-0.jsonl").findings)
    stopped.unlink()  # the operator read the log
    assert _privacy(_call(node, 3))["status"] == "trained"


def test_the_reply_carries_no_record_count_and_no_loss_under_dp(tmp_path):
    reply = _call(_node(tmp_path), 1)
    assert dict(reply.content["metrics"]) == {"unit-weight": 1}
    record = dict(reply.content["privacy"])
    assert set(record) == {"status", "client_id", "entry", "public_key"}
    assert set(json.loads(record["entry"])) == {
        "round", "client_id", "run_id", "proposal", "mechanism", "noise_multiplier",
        "sample_rate", "steps", "max_grad_norm", "delta", "accountant", "epsilon",
        "lifetime_epsilon", "epsilon_budget", "exhausted", "prev_hash", "hash", "key_id",
        "signature", "class_noise", "class_counts"}
    # q is the run's public rate, not 1/ceil(n/B).
    assert _privacy(reply)["sample_rate"] == RUN["sample-rate"]


def test_class_counts_are_released_once_per_run_with_noise_and_charged(tmp_path):
    from client.dataset import load_partition
    from privacy.accountant import epsilon_of

    node = _node(tmp_path)
    first, second = _privacy(_call(node, 1)), _privacy(_call(node, 2))
    assert "class_counts" not in second and first["class_noise"] == RUN["class-noise"]
    part = load_partition("digits", 0, 3, scheme="dirichlet", alpha=1.0, holdout=0.3, seed=0)
    exact = [int((part.y == c).sum()) for c in range(10)]
    diffs = [a - b for a, b in zip(first["class_counts"], exact, strict=True)]
    assert any(abs(d) > 0.5 for d in diffs) and all(abs(d) < 60 for d in diffs)
    # The counts are one Gaussian step of sensitivity 1, composed with the DP-SGD steps.
    history = [(RUN["class-noise"], 1.0, 1), (first["noise_multiplier"], first["sample_rate"],
                                              first["steps"])]
    assert first["epsilon"] == pytest.approx(epsilon_of(history, accountant="rdp",
                                                        delta=RUN["delta"]))
    assert first["epsilon"] == pytest.approx(
        recompute_epsilon([first], delta=RUN["delta"], method="rdp"), rel=0.01)
    # Two runs into one ledger: each releases its own counts once.
    other = _privacy(_call(node, 1, run_id=2))
    assert "class_counts" in other


@pytest.mark.parametrize("change", [{"balance": True},
                                    {"client-dp": "fixed", "server-momentum": 0.0}])
def test_with_balance_or_owner_level_dp_no_counts_are_released_or_charged(tmp_path, change):
    """No counts under owner-level DP: noised for one record, they would carry an owner's."""
    event = _privacy(_call(_node(tmp_path), 1, run={**RUN, **change}))
    assert event["status"] == "trained", event
    assert "class_counts" not in event and "class_noise" not in event


def test_a_broken_ledger_stops_the_owner_and_says_so_without_details(tmp_path):
    node = _node(tmp_path)
    _call(node, 1)
    path = tmp_path / "owner-0.jsonl"
    path.write_text(path.read_text().replace('"steps":', '"steps":1', 1))
    reply = _call(node, 2)
    assert _privacy(reply) == {"status": "failed", "client_id": 0,
                               "reason": "the owner's ledger is unreadable or broken"}
    assert "arrays" not in reply.content


def test_a_replayed_round_re_sends_the_first_spend_and_never_spends_twice(tmp_path):
    node = _node(tmp_path)
    first = _call(node, 1)
    again = _call(node, 1)
    assert dict(again.content["privacy"])["status"] == "replayed" and "arrays" not in again.content
    # The same signed line, not a new one: a resumed coordinator can record what it missed.
    assert again.content["privacy"]["entry"] == first.content["privacy"]["entry"]
    assert len(_ledger(tmp_path)) == 1


def test_concurrent_messages_are_serialised_by_the_ledger_lock(tmp_path):
    node = _node(tmp_path, **{"epsilon-budget": 1.0})
    run = {**RUN, "epsilon": 1.0, "rounds": 1, "local-epochs": 4}
    replies = []

    def call(r):
        replies.append(_privacy(_call(node, r, run)))

    threads = [threading.Thread(target=call, args=(r,)) for r in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    history = [e for e in _ledger(tmp_path) if e["mechanism"] == "dp-sgd"]
    assert recompute_epsilon(history, delta=1e-5, method="pld") <= 1.0 * 1.001
    assert len(read_ledger(tmp_path / "owner-0.jsonl")) == 3  # every call is a chained line


def test_an_invalid_proposal_is_refused_with_the_key(tmp_path):
    refused = _privacy(_call(_node(tmp_path), 1, {**RUN, "rounds": 2.5}))
    assert refused["status"] == "refused"
    assert refused["reason"].startswith("the proposal is invalid: run_config: rounds=2.5")


def test_a_node_without_budget_uses_the_conservative_default(tmp_path):
    node = {"partition-id": 0, "num-partitions": 3,
            "ledger-path": str(tmp_path / "owner-0.jsonl")}
    event = _privacy(_call(node, 1))
    assert event["epsilon_budget"] == 1.0 and event["lifetime_epsilon"] <= 1.0


def test_two_runs_on_the_node_ledger_audit_clean(tmp_path, capsys):
    from simulations.cli import main

    node = _node(tmp_path, **{"epsilon-budget": 4.0})
    for run_id in (1, 2):
        for r in (1, 2):
            _call(node, r, {**RUN, "epsilon": 3.0, "rounds": 2}, run_id)
    assert main(["audit", "--node-ledger", str(tmp_path / "owner-0.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "audit: PASS" in out
    lines = [json.loads(x) for x in (tmp_path / "owner-0.jsonl").read_text().splitlines()]
    assert {x["run_id"] for x in lines} == {1, 2}


def test_a_ledger_cut_back_or_deleted_is_caught_by_its_pinned_head(tmp_path):
    node = _node(tmp_path)
    _call(node, 1)
    _call(node, 2)
    path = tmp_path / "owner-0.jsonl"
    path.write_text(path.read_text().splitlines()[0] + "\n")  # a valid chain, one line short
    assert _privacy(_call(node, 3))["reason"] == "the owner's ledger is unreadable or broken"
    path.unlink()
    assert _privacy(_call(node, 3))["reason"] == "the owner's ledger is unreadable or broken"


def test_after_non_private_training_the_owner_refuses_to_claim_a_budget(tmp_path, capsys):
    from simulations.cli import main

    node = _node(tmp_path, **{"allow-nonprivate": True})
    assert _privacy(_call(node, 1, {**RUN, "epsilon": math.inf}))["status"] == "nonprivate"
    assert _privacy(_call(node, 2, {**RUN, "epsilon": math.inf}))["status"] == "nonprivate"
    later = _privacy(_call(node, 3))
    assert later["status"] == "refused" and "trained on without DP before" in later["reason"]
    assert main(["audit", "--node-ledger", str(tmp_path / "owner-0.jsonl")]) == 1
    assert "trained without DP in run 1, round 1" in capsys.readouterr().out


def test_failures_carry_one_fixed_reason_and_are_ledgered(tmp_path):
    bad = tmp_path / "owner.npz"
    bad.write_bytes(b"not an npz, maybe a private value 42")
    node = {"data-path": str(bad), "client-id": 3, "epsilon-budget": 2.0}
    reply = _privacy(_call(node, 1))
    assert (reply["status"], reply["client_id"], reply["mechanism"]) == ("failed", 3, "none")
    assert reply["reason"] == "training failed on the owner (the details are in its own log)"
    lines = read_ledger(tmp_path / "owner.npz.fedsynth-ledger.jsonl")
    # The reply carries the owner's ledger line itself, signed.
    assert lines[-1] == json.loads(reply["entry"])


def test_the_schema_never_comes_from_the_run_config(tmp_path):
    proposal = {**RUN, "dataset": "csv", "schema-path": "/etc/passwd"}
    refused = _privacy(_call({"data-path": str(tmp_path / "o.csv")}, 1, proposal))
    assert refused["reason"] == ("this owner holds images (no schema-path); the proposal "
                                 "asks for dataset 'csv'")


def test_a_table_owner_reads_its_rows_with_its_own_schema_whatever_the_proposal(tmp_path):
    """A built-in schema swapped in by the proposal would make failure a free oracle."""
    from client.dataset import sklearn_table
    from genai_models.data_spec import SCHEMA_DIR

    rows = tmp_path / "o.csv"
    sklearn_table("wine").to_csv(rows, index=False)
    node = {"data-path": str(rows), "schema-path": str(SCHEMA_DIR / "wine.toml"),
            "epsilon-budget": 4.0, "max-delta": 1e-3, "max-records": 500}
    from genai_models import resolve

    run = {**RUN, "dataset": "breast-cancer", "delta": 1e-3}
    context = Context(run_id=1, node_id=7, node_config=node, state=RecordDict(), run_config={})
    # The breast-cancer model does not fit the owner's own (wine) schema: it fails the
    # same way whatever its rows hold.
    failed = _privacy(train_round(_message(1, resolve("breast-cancer")[0]), context, run, node))
    assert failed["status"] == "failed"
    trained = _privacy(train_round(_message(2, resolve("wine")[0]), context,
                                   {**run, "dataset": "wine"}, node))
    assert trained["status"].startswith("trained")


def test_crafted_global_weights_are_refused_and_nan_gradients_cannot_signal(tmp_path):
    """A detector built from huge weights: the owner refuses it before touching data."""
    node = _node(tmp_path)
    msg = _message(1)
    arrays = msg.content["arrays"].to_torch_state_dict()
    arrays["to_stats.bias"][0] = 3e38
    msg.content["arrays"] = ArrayRecord(arrays)
    context = Context(run_id=1, node_id=7, node_config=node, state=RecordDict(),
                      run_config={})
    refused = _privacy(train_round(msg, context, RUN, node))
    assert refused["reason"] == "the global model's weights are not finite or outside ±10000"


def test_no_refusal_reads_a_record_so_none_can_time_the_owners_file(tmp_path, monkeypatch):
    """Refusals come before any record is read: an owner whose records cannot be read.

    A read takes time that grows with the records, so a refusal after it would time them.
    """
    import client.client_app as owner

    def unreadable(*args, **kwargs):
        raise AssertionError("the records were read")

    monkeypatch.setattr(owner, "load_partition", unreadable)
    node = _node(tmp_path, **{"epsilon-budget": 0.5})
    msg = _message(1)
    arrays = msg.content["arrays"].to_torch_state_dict()
    arrays["to_stats.bias"][0] = float("nan")
    msg.content["arrays"] = ArrayRecord(arrays)
    context = Context(run_id=1, node_id=7, node_config=node, state=RecordDict(),
                      run_config={})
    refused = _privacy(train_round(msg, context, RUN, node))
    assert refused["status"] == "refused" and "the global model's weights" in refused["reason"]
    # A budget too small for one step: exhausted, without reading a record.
    tiny = {**RUN, "epsilon": 0.5, "accountant": "prv"}
    assert _privacy(_call(_node(tmp_path, **{"epsilon-budget": 1e-3}), 2, tiny))["status"] \
        == "exhausted"


def test_a_message_without_a_valid_round_cannot_brick_the_ledger(tmp_path):
    node = _node(tmp_path)
    for bad in (0, -3, True):
        msg = _message(1)
        msg.content["config"] = ConfigRecord({"server-round": bad})
        context = Context(run_id=1, node_id=7, node_config=node, state=RecordDict(),
                          run_config={})
        assert _privacy(train_round(msg, context, RUN, node))["status"] == "refused"
    assert _privacy(_call(node, 1))["status"].startswith("trained")


def test_a_simulated_owner_refuses_a_new_split_on_its_old_ledger(tmp_path):
    node = _node(tmp_path)
    _call(node, 1)
    refused = _privacy(_call(node, 2, {**RUN, "seed": 1}))
    assert refused["status"] == "refused" and "another split of the data" in refused["reason"]


def test_every_reply_carries_the_owners_signed_line_and_a_bad_key_stops_it(tmp_path):
    from privacy.signing import load_owner_keys, verify

    node = _node(tmp_path)
    record = dict(_call(node, 1).content["privacy"])
    entry = json.loads(record["entry"])
    assert entry == read_ledger(tmp_path / "owner-0.jsonl")[-1]
    assert verify(load_owner_keys(tmp_path)[0], entry)  # owner-0.key made on first use
    (tmp_path / "owner-0.key").write_text("not a key")
    reply = _privacy(_call(node, 2))
    assert reply == {"status": "failed", "client_id": 0,
                     "reason": "the owner's signing key is unreadable"}
    assert len(read_ledger(tmp_path / "owner-0.jsonl")) == 1


def test_counts_are_skipped_when_they_would_cost_the_training_too_much(tmp_path):
    """On a lifetime budget of 0.5 the counts' Gaussian step would eat much of it."""
    event = _privacy(_call(_node(tmp_path, **{"epsilon-budget": 0.5}), 1))
    assert event["status"] == "trained" and "class_counts" not in event
    assert event["lifetime_epsilon"] <= 0.5


def test_by_default_an_owner_assumes_one_colluder_under_distributed_noise(tmp_path):
    """Colluders = 0 would let the coordinator's own claim set how much noise guards it."""
    node = _node(tmp_path, **{"allow-distributed": True, "owner-keys": str(tmp_path)})
    refused = _privacy(_call(node, 1, {**RUN, "noise": "distributed", "colluders": 0}))
    assert refused["reason"] == ("the proposal tolerates 0 colluding owners; this owner "
                                 "insists on 1")


PEOPLE = """
target = "outcome"

[[columns]]
name = "age"
type = "integer"
min = 18
max = 90

[[columns]]
name = "region"
type = "categorical"
categories = ["north", "south", "east", "west"]

[[columns]]
name = "outcome"
type = "categorical"
categories = ["healthy", "sick"]
"""


def _table_gan_owner(tmp_path):
    import pandas as pd

    from genai_models import resolve

    (tmp_path / "people.toml").write_text(PEOPLE)
    regions = ["north"] * 60 + ["south"] * 30 + ["east"] * 10  # no one from the west
    pd.DataFrame({"age": range(20, 120, 1)[:100], "region": regions,
                  "outcome": ["sick", "healthy"] * 50}).assign(
        age=lambda f: f.age.clip(upper=90)).to_csv(tmp_path / "o.csv", index=False)
    node = {"data-path": str(tmp_path / "o.csv"), "schema-path": str(tmp_path / "people.toml"),
            "epsilon-budget": 8.0, "max-delta": 1e-3, "max-records": 500}
    run = {**RUN, "dataset": "csv", "schema-path": str(tmp_path / "people.toml"),
           "model": "gan", "delta": 1e-3}
    spec = resolve("csv", tmp_path / "people.toml")[0]
    context = Context(run_id=1, node_id=7, node_config=node, state=RecordDict(), run_config={})

    def call(server_round, frequencies=None):
        model = build_model("gan", spec, hidden_dim=16, latent_dim=2)
        config = {"server-round": server_round}
        if frequencies is not None:
            config["condition-frequencies"] = frequencies
        msg = Message(content=RecordDict({"arrays": ArrayRecord(model.state_dict()),
                                          "config": ConfigRecord(config)}),
                      dst_node_id=7, message_type=MessageType.TRAIN)
        return _privacy(train_round(msg, context, run, node))

    return call


def test_a_table_gan_owner_releases_its_category_counts_with_its_class_counts(tmp_path):
    """Training-by-sampling: the conditioned column's counts ride on the class counts.

    One release, noised for the joint sensitivity and charged once.
    """
    from privacy.accountant import epsilon_of

    call = _table_gan_owner(tmp_path)
    first = call(1)
    assert first["status"] == "trained", first
    assert len(first["class_counts"]) == 2 and len(first["category_counts"]) == 4
    std = RUN["class-noise"] * math.sqrt(2)  # one class block and one conditioned column
    exact = [60, 30, 10, 0]
    assert all(abs(a - b) < 6 * std for a, b in zip(first["category_counts"], exact,
                                                     strict=True))
    history = [(RUN["class-noise"], 1.0, 1), (first["noise_multiplier"], first["sample_rate"],
                                              first["steps"])]
    assert first["epsilon"] == pytest.approx(epsilon_of(history, accountant="rdp", delta=1e-3))
    second = call(2, frequencies=[6.0, 3.0, 1.0, 0.0])
    assert second["status"] == "trained" and "category_counts" not in second


@pytest.mark.parametrize("frequencies, why", [
    ([1.0, 1.0, 1.0], "3 condition frequencies for 4 categories"),
    ([1.0, float("nan"), 1.0, 1.0], "finite and non-negative"),
    (["north", "south", "east", "west"], "not a list of numbers"),
])
def test_a_table_gan_owner_refuses_bad_frequencies_before_reading_a_record(tmp_path, frequencies,
                                                                            why):
    refused = _table_gan_owner(tmp_path)(1, frequencies)
    assert refused["status"] == "refused" and why in refused["reason"]
    assert not list(tmp_path.glob("*stopped*"))  # refused before the records: no stop


def test_the_counts_noise_has_the_joint_sensitivitys_std():
    import torch

    from client.client_app import _noisy_counts
    from client.dataset import LabelledData
    from genai_models.training_by_sampling import Conditions

    x = torch.zeros(10, 5)
    x[:, 0] = 1  # every record in category 0 of the first column, the second column missing
    data = LabelledData(x.numpy(), torch.zeros(10, dtype=torch.long).numpy())
    draws = [_noisy_counts(data, 2, Conditions(((0, 2), (2, 3))), 10.0) for _ in range(300)]
    noise = torch.tensor([d["class_counts"] + d["category_counts"] for d in draws])
    noise -= torch.tensor([10.0, 0, 10, 0, 0, 0, 0])
    assert float(noise.std()) == pytest.approx(10.0 * math.sqrt(3), rel=0.1)
    assert draws[0]["class_noise"] == 10.0

"""The reply judge with fake replies, no simulation (as Flower tests its strategies).

Every reply becomes one ledger line; an authentic signed event is embedded verbatim
whatever the verdict; nothing in a reply's content raises.
"""

from types import SimpleNamespace

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from privacy.experiment import ExperimentConfig
from privacy.ledger import Ledger, canonical, entry_hash
from privacy.signing import Signer, load_owner_keys, public_text
from server.replies import ReplyJudge

SETTINGS = ExperimentConfig(num_clients=3, rounds=3)
GLOBAL = {"w": torch.zeros(2)}
RUN_ID = 7


def _spend(**change):
    return {"round": 1, "client_id": 0, "run_id": RUN_ID, "mechanism": "dp-sgd",
            "noise_multiplier": 1.1, "sample_rate": SETTINGS.sample_rate, "steps": 4,
            "max_grad_norm": SETTINGS.max_grad_norm, "delta": SETTINGS.delta,
            "accountant": SETTINGS.accountant, "epsilon": 0.5, "lifetime_epsilon": 0.5,
            "epsilon_budget": 8.0} | change


@pytest.fixture
def owners(tmp_path):
    """Two owners' signers and ledgers; their public keys registered in tmp_path/keys."""
    out = {}
    for cid in (0, 1):
        signer = Signer.load_or_create(tmp_path / "keys" / f"owner-{cid}.key")
        out[cid] = Ledger(tmp_path / f"client-{cid}.jsonl", verify=True, signer=signer)
    return out


def _reply(record: dict, node=5, arrays=True, error=None):
    content = RecordDict({"privacy": ConfigRecord(record)})
    if arrays:
        content["arrays"] = ArrayRecord({"w": torch.zeros(2)})
    return SimpleNamespace(content=content, metadata=SimpleNamespace(src_node_id=node),
                           has_error=lambda: error is not None,
                           error=SimpleNamespace(reason=error))


def _signed(ledger, status, event, node=5, arrays=True):
    entry = ledger.append(event)
    public = public_text(ledger.signer.key.public_key()).decode().strip()
    record = {"status": status, "client_id": entry["client_id"], "entry": canonical(entry),
              "public_key": public}
    return entry, _reply(record, node=node, arrays=arrays)


def _judge(tmp_path, registered=True, **change):
    keys = load_owner_keys(tmp_path / "keys") if registered else None
    return ReplyJudge(ExperimentConfig(num_clients=3, rounds=3, **change), RUN_ID, keys)


def test_an_honest_spend_is_accepted_and_its_signed_event_embedded_verbatim(tmp_path, owners):
    entry, reply = _signed(owners[0], "trained", _spend())
    j = _judge(tmp_path).judge(reply, 1, GLOBAL)
    assert j.counts and j.line["verdict"] == "accepted" and j.line["owner_entry"] == entry
    assert {k: j.line[k] for k in ("noise_multiplier", "epsilon", "steps", "node_id")} == {
        "noise_multiplier": 1.1, "epsilon": 0.5, "steps": 4, "node_id": 5}


def test_a_refusal_is_recorded_with_the_owners_reason(tmp_path, owners):
    event = {"round": 1, "client_id": 1, "run_id": RUN_ID, "mechanism": "none",
             "reason": "the privacy budget is spent"}
    entry, reply = _signed(owners[1], "exhausted", event, node=6, arrays=False)
    j = _judge(tmp_path).judge(reply, 1, GLOBAL)
    assert not j.counts and j.line["verdict"] == "recorded"
    assert j.line["reason"] == "the privacy budget is spent" and j.line["owner_entry"] == entry


@pytest.mark.parametrize("forge, why", [
    ("halve", "signature does not verify"),
    ("other_key", "signature does not verify"),
    ("unregistered", "has no registered signing key"),
])
def test_a_forged_or_altered_event_is_rejected_and_not_embedded(tmp_path, owners, forge, why):
    entry, reply = _signed(owners[0], "trained", _spend())
    record = dict(reply.content["privacy"])
    if forge == "halve":  # a consistent rewrite: new noise, new hash, the old signature
        forged = {**entry, "noise_multiplier": 0.55}
        forged["hash"] = entry_hash(forged)
        record["entry"] = canonical(forged)
    elif forge == "other_key":  # signed by the coordinator's own key under owner 0's name
        mallory = Signer.load_or_create(tmp_path / "mallory.key")
        forged = {**entry, "key_id": mallory.key_id}
        forged["hash"] = entry_hash(forged)
        forged["signature"] = mallory.sign(forged["hash"])
        record["entry"] = canonical(forged)
    else:
        (tmp_path / "keys" / "owner-0.pub").unlink()
    j = _judge(tmp_path).judge(_reply(record), 1, GLOBAL)
    assert j.line["verdict"] == "rejected" and why in j.line["reason"]
    assert "owner_entry" not in j.line and j.line["mechanism"] == "none" and not j.counts


def test_a_replayed_event_is_rejected(tmp_path, owners):
    judge = _judge(tmp_path)
    _, reply = _signed(owners[0], "trained", _spend())
    record = dict(reply.content["privacy"])
    assert judge.judge(reply, 1, GLOBAL).counts
    again = judge.judge(_reply(record), 2, GLOBAL)
    assert again.line["verdict"] == "rejected" and "replayed" in again.line["reason"]


@pytest.mark.parametrize("status, event, arrays, why", [
    ("refused", {"mechanism": "none", "reason": "x"}, True, "status refused carries weights"),
    ("trained", {"mechanism": "none", "reason": "x"}, True, "status trained with a none event"),
    ("nonprivate", {"mechanism": "nonprivate", "reason": "x"}, True,
     "trained without DP in a private run"),
    ("trained", {"sample_rate": 0.9}, True, "sample_rate 0.9 is not the proposal's"),
    ("trained", {"steps": 400}, True, "steps 400 exceed"),
    ("trained", {"epsilon": 9.0, "lifetime_epsilon": 9.0, "epsilon_budget": 40.0}, True,
     "run epsilon 9.0000 exceeds the proposed 8"),
])
def test_an_authentic_event_that_does_not_fit_is_rejected_but_kept(tmp_path, owners, status,
                                                                     event, arrays, why):
    base = {"round": 1, "client_id": 0, "run_id": RUN_ID}
    full = {**_spend(), **event} if event.get("mechanism", "dp-sgd") == "dp-sgd" else \
        {**base, **event}
    entry, reply = _signed(owners[0], status, full, arrays=arrays)
    j = _judge(tmp_path).judge(reply, 1, GLOBAL)
    assert j.line["verdict"] == "rejected" and why in j.line["rejection"], j.line
    assert j.line["owner_entry"] == entry and not j.counts


def test_weights_of_another_shape_or_not_finite_are_rejected(tmp_path, owners):
    judge = _judge(tmp_path)
    _, reply = _signed(owners[0], "trained", _spend())
    reply.content["arrays"] = ArrayRecord({"w": torch.full((2,), float("nan"))})
    assert "not finite" in judge.judge(reply, 1, GLOBAL).line["rejection"]
    _, reply = _signed(owners[1], "trained", _spend(client_id=1), node=6)
    reply.content["arrays"] = ArrayRecord({"w": torch.zeros(3)})
    assert "shape" in judge.judge(reply, 1, GLOBAL).line["rejection"]


@pytest.mark.parametrize("record", [
    {"status": "trained"},
    {"status": "trained", "client_id": "abc", "entry": "{}"},
    {"status": "trained", "client_id": True, "entry": "{}"},
    {"status": "bogus", "client_id": 0},
    {"status": "trained", "client_id": 0, "entry": "not json"},
    {"status": "trained", "client_id": 0, "entry": '{"epsilon": NaN}'},
    {"status": "trained", "client_id": 0, "entry": "[1, 2]"},
    {"status": "trained", "client_id": 0, "entry": "x" * 100_000},
    {"status": "trained", "client_id": 0, "entry": canonical(_spend(epsilon="abc"))},
    {"status": "failed", "client_id": 0},
])
def test_malformed_replies_are_rejected_and_never_raise(tmp_path, owners, record):
    j = _judge(tmp_path).judge(_reply(record), 1, GLOBAL)
    assert j.line["verdict"] == "rejected" and j.line["mechanism"] == "none" and j.line["reason"]


def test_a_node_error_and_a_missing_privacy_record_are_ledgered(tmp_path):
    judge = _judge(tmp_path)
    j = judge.judge(_reply({}, error="node lost"), 1, GLOBAL)
    assert j.line["verdict"] == "rejected" and "node lost" in j.line["reason"]
    bare = SimpleNamespace(content=RecordDict({}), metadata=SimpleNamespace(src_node_id=9),
                           has_error=lambda: False)
    assert "lacks its 'privacy' record" in judge.judge(bare, 1, GLOBAL).line["reason"]


def test_crafted_content_never_raises_out_of_the_judge(tmp_path, owners):
    """What a reviewer crafted: deep JSON, huge integers, non-JSON floats, alien keys."""
    judge = _judge(tmp_path, registered=False)
    entry = owners[0].append(_spend())
    crafted = [
        {"entry": '{"a":' + "[" * 5000 + "]" * 5000 + "}"},
        {"entry": canonical(entry).replace('"round":1', '"round":' + "9" * 400)},
        {"entry": canonical(entry)[:-1] + ',"x":1e400}'},
        {"entry": canonical(entry), "public_key": "ssh-foo AAAAB3NzaC1yc2E"},
    ]
    for change in crafted:
        record = {"status": "trained", "client_id": 0, **change}
        j = judge.judge(_reply(record), 1, GLOBAL)
        assert j.line["verdict"] == "rejected" and not j.counts, change


def test_an_unsigned_claim_cannot_lock_the_real_owner_out(tmp_path, owners):
    judge = _judge(tmp_path)
    for record in ({"status": "trained", "client_id": 1, "entry": "garbage"},
                   {"status": "failed", "client_id": 1, "reason": "x"}):
        judge.judge(_reply(record, node=9, arrays=False), 1, GLOBAL)
    _, reply = _signed(owners[1], "trained", _spend(client_id=1), node=6)
    assert judge.judge(reply, 1, GLOBAL).counts


def test_an_unsigned_refusal_is_attributed_to_no_owner(tmp_path):
    j = _judge(tmp_path).judge(_reply({"status": "failed", "client_id": 1, "reason": "x"},
                                      arrays=False), 1, GLOBAL)
    assert j.line["verdict"] == "recorded" and j.line["client_id"] is None
    assert "claims owner 1" in j.line["reason"]


def test_weights_of_another_dtype_are_rejected(tmp_path, owners):
    _, reply = _signed(owners[0], "trained", _spend())
    reply.content["arrays"] = ArrayRecord({"w": torch.zeros(2, dtype=torch.complex64)})
    assert "dtype" in _judge(tmp_path).judge(reply, 1, GLOBAL).line["rejection"]


def test_an_accepted_reply_reaches_the_aggregator_with_only_checked_content(tmp_path, owners):
    _, reply = _signed(owners[0], "trained", _spend())
    reply.content["metrics"] = MetricRecord({"unit-weight": -1.0, "extra": 3.0})
    assert _judge(tmp_path).judge(reply, 1, GLOBAL).counts
    assert set(reply.content.keys()) == {"arrays", "metrics"}
    assert dict(reply.content["metrics"]) == {"unit-weight": 1}


def test_a_signed_event_for_another_proposal_is_rejected(tmp_path, owners):
    _, reply = _signed(owners[0], "trained", _spend(proposal="0" * 64))
    j = _judge(tmp_path).judge(reply, 1, GLOBAL)
    assert j.line["verdict"] == "rejected" and "another proposal" in j.line["reason"]


def test_nodes_cannot_switch_or_share_an_owner_identity(tmp_path, owners):
    judge = _judge(tmp_path)
    _, reply = _signed(owners[0], "trained", _spend(), node=5)
    assert judge.judge(reply, 1, GLOBAL).counts
    _, other = _signed(owners[1], "trained", _spend(client_id=1, round=2), node=5)
    assert "spoke for owner 0 before" in judge.judge(other, 2, GLOBAL).line["reason"]
    _, imposter = _signed(owners[0], "trained", _spend(round=2), node=6)
    assert "whom node 5 speaks for" in judge.judge(imposter, 2, GLOBAL).line["reason"]


def test_without_registered_keys_the_first_key_is_pinned(tmp_path, owners):
    judge = _judge(tmp_path, registered=False)
    _, reply = _signed(owners[0], "trained", _spend())
    assert judge.judge(reply, 1, GLOBAL).counts
    mallory = Ledger(tmp_path / "m.jsonl", signer=Signer.load_or_create(tmp_path / "m.key"))
    _, forged = _signed(mallory, "trained", _spend(round=2))
    assert "signature does not verify" in judge.judge(forged, 2, GLOBAL).line["reason"]


def test_a_replayed_spend_is_recorded_once_and_never_averaged(tmp_path, owners):
    entry, reply = _signed(owners[0], "replayed", _spend(), arrays=False)
    judge = _judge(tmp_path)
    j = judge.judge(reply, 1, GLOBAL)
    assert j.line["verdict"] == "recorded" and j.line["owner_entry"] == entry and not j.counts
    record = dict(reply.content["privacy"])
    resumed = _judge(tmp_path)
    resumed.remember([j.line])  # a resumed run that already holds it
    again = resumed.judge(_reply(record, arrays=False), 1, GLOBAL)
    assert again.line["verdict"] == "rejected" and "a second event" in again.line["reason"]


def test_an_update_beyond_what_its_dp_steps_can_move_is_clipped_to_the_bound(tmp_path, owners):
    """A malicious owner's 1e6-scaled update counts no more than the recipe allows."""
    judge = _judge(tmp_path)
    global_arrays = {"w": torch.zeros(2)}
    bound = judge.recipe.bound({"w": 2}, 4, 1.1)
    entry, reply = _signed(owners[0], "trained", _spend())
    reply.content["arrays"] = ArrayRecord({"w": torch.tensor([3e6, 4e6])})
    j = judge.judge(reply, 1, global_arrays)
    assert j.counts and j.line["clipped"] is True
    assert j.line["update_norm"] == 5e6 and j.line["update_bound"] == pytest.approx(bound, rel=1e-5)
    counted = reply.content["arrays"].to_torch_state_dict()["w"]
    assert float(counted.norm()) == pytest.approx(bound, rel=1e-5)
    assert counted[1] / counted[0] == pytest.approx(4 / 3)  # clipped, not reshaped
    # An update within the bound counts as it came.
    entry, honest = _signed(owners[1], "trained", _spend(client_id=1), node=6)
    honest.content["arrays"] = ArrayRecord({"w": torch.tensor([0.3, 0.4])})
    j = judge.judge(honest, 1, global_arrays)
    assert j.counts and j.line["clipped"] is False and j.line["update_norm"] == 0.5
    assert torch.equal(honest.content["arrays"].to_torch_state_dict()["w"],
                       torch.tensor([0.3, 0.4]))


def test_a_forged_huge_noise_multiplier_buys_no_larger_bound(tmp_path, owners):
    recipe = _judge(tmp_path).recipe
    fair = recipe.bound({"w": 1000}, 4, recipe.proposal_noise * 2)
    assert recipe.bound({"w": 1000}, 4, 1e6) == fair


def test_class_counts_are_taken_once_per_owner_with_the_proposals_noise(tmp_path, owners):
    judge = _judge(tmp_path)
    counts = {"class_noise": SETTINGS.class_noise, "class_counts": [5.0] * 10}
    _, first = _signed(owners[0], "trained", _spend(**counts))
    assert judge.judge(first, 1, GLOBAL).counts
    _, again = _signed(owners[0], "trained", _spend(round=2, **counts))
    j = judge.judge(again, 2, GLOBAL)
    assert not j.counts and "a second class-count release from owner 0" in j.line["rejection"]
    for change, why in (({"class_noise": 0.01}, "is not the proposal's 10.0"),
                        ({"class_counts": [1.0, 2.0]}, "2 class counts for 10 classes"),
                        ({"class_counts": [-1e12] + [5.0] * 9}, "is below what noise"),
                        ({"noise_multiplier": 1e-300}, "half what the proposal calibrates")):
        _, reply = _signed(owners[1], "trained", _spend(client_id=1, **{**counts, **change}),
                           node=6)
        j = _judge(tmp_path).judge(reply, 1, GLOBAL)
        assert not j.counts and why in j.line["rejection"]
    _, balanced = _signed(owners[1], "trained", _spend(client_id=1, round=3, **counts), node=6)
    j = _judge(tmp_path, balance=True).judge(balanced, 3, GLOBAL)
    assert "balances the classes" in j.line["rejection"]
    _, owner_level = _signed(owners[1], "trained", _spend(client_id=1, round=4, **counts), node=6)
    j = _judge(tmp_path, client_dp="fixed").judge(owner_level, 4, GLOBAL)
    assert "under owner-level DP" in j.line["rejection"]


def test_release_labels_follow_the_shares_and_keep_every_class():
    from server.release import class_shares, release_labels

    lines = [{"verdict": "accepted", "owner_entry": {"client_id": c, "class_counts": counts}}
             for c, counts in ((0, [30.0, 10.0, -4.0]), (1, [30.0, 10.0, 1.0]))]
    lines.append({"verdict": "rejected", "owner_entry": {"client_id": 2,
                                                         "class_counts": [0.0, 900.0, 0.0]}})
    shares = class_shares(lines, 3)
    assert shares["owners"] == [0, 1]
    # Owner 0: (30, 10, 0)/40; owner 1: (30, 10, 1)/41; both weigh min(total, lower
    # median 40): the mean of their shares.
    want = [(30 / 40 + 30 / 41) / 2, (10 / 40 + 10 / 41) / 2, (1 / 41) / 2]
    assert shares["shares"] == pytest.approx(want, abs=1e-6)
    labels = release_labels(100, 3, [0.75, 0.25, 0.0])
    assert torch.bincount(labels).tolist() == [74, 25, 1]  # the zeroed class still appears
    assert torch.bincount(release_labels(9, 3, None)).tolist() == [3, 3, 3]


def test_one_owner_claiming_huge_counts_weighs_no_more_than_a_typical_owner():
    from server.release import class_shares

    honest = [{"verdict": "accepted", "owner_entry": {"client_id": c, "class_counts": [50.0, 50.0]}}
              for c in range(4)]
    liar = {"verdict": "accepted", "owner_entry": {"client_id": 9, "class_counts": [1e12, 0.0]}}
    shares = class_shares([*honest, liar], 2)["shares"]
    assert shares[0] == pytest.approx(0.6)  # (4 x 0.5 + 1.0) / 5: a fifth of the say, no more
    # With two owners, the liar weighs as much as the honest one, not half its own claim.
    assert class_shares([honest[0], liar], 2)["shares"][0] == pytest.approx(0.75)


@pytest.mark.parametrize("alien", [{"clipped": True}, {"update_norm": 1.0},
                                   {"rejection": "x"}, {"node_id": 3}, {"verdict": "accepted"},
                                   {"whatever": 1}])
def test_an_event_with_fields_no_owner_writes_is_rejected(tmp_path, owners, alien):
    """A signed refusal smuggling coordinator fields (or any other) into the run's ledger."""
    event = {"round": 1, "client_id": 0, "run_id": RUN_ID, "mechanism": "none",
             "reason": "no", **alien}
    _, reply = _signed(owners[0], "refused", event, arrays=False)
    j = _judge(tmp_path).judge(reply, 1, GLOBAL)
    assert j.line["verdict"] == "rejected" and "fields no owner writes" in j.line["reason"]
    assert "owner_entry" not in j.line and j.line["node_id"] == 5
    assert all(k in ("node_id", "verdict") or k not in j.line for k in alien)


def test_huge_claimed_noise_when_none_fits_the_proposal_buys_only_the_signal(tmp_path,
                                                                              owners):
    judge = _judge(tmp_path, epsilon=1e-3, accountant="prv")
    _, reply = _signed(owners[0], "trained",
                       _spend(noise_multiplier=1e100, epsilon=1e-4, lifetime_epsilon=1e-4,
                              accountant="prv", delta=1e-5))
    reply.content["arrays"] = ArrayRecord({"w": torch.tensor([3e38, -3e38])})
    j = judge.judge(reply, 1, GLOBAL)
    counted = reply.content["arrays"].to_torch_state_dict()["w"]
    # No noise fits: the bound is the clipped gradients' own (lr x steps x C x 4 = 9.6).
    assert j.line["update_bound"] == pytest.approx(9.6)
    assert float(counted.norm()) == pytest.approx(9.6, rel=1e-4)


def test_a_resumed_run_without_registered_keys_keeps_each_owners_first_key(tmp_path, owners):
    entry, first = _signed(owners[0], "trained", _spend())
    judge = _judge(tmp_path, registered=False)
    line = judge.judge(first, 1, GLOBAL).line
    resumed = _judge(tmp_path, registered=False)
    resumed.remember([line])
    mallory = Ledger(tmp_path / "mallory.jsonl", verify=True,
                     signer=Signer.load_or_create(tmp_path / "mallory.key"))
    _, impostor = _signed(mallory, "trained", _spend(round=2), node=9)
    j = resumed.judge(impostor, 2, GLOBAL)
    assert not j.counts and "signed this run with another key before" in j.line["reason"]


def test_a_table_gans_counts_must_hold_every_conditioned_category(tmp_path, owners):
    """Training-by-sampling: category counts come with the class counts.

    One per category of each categorical column; none below what the joint noise makes of 0.
    """
    schema = tmp_path / "t.toml"
    schema.write_text('target = "y"\n[[columns]]\nname = "a"\ntype = "categorical"\n'
                      'categories = ["p", "q", "r"]\n[[columns]]\nname = "y"\n'
                      'type = "categorical"\ncategories = ["0", "1"]\n')
    change = {"dataset": "csv", "schema_path": str(schema), "model": "gan"}
    counts = {"class_noise": SETTINGS.class_noise, "class_counts": [5.0, 5.0],
              "category_counts": [4.0, 3.0, 3.0]}
    _, good = _signed(owners[0], "trained", _spend(**counts))
    assert _judge(tmp_path, **change).judge(good, 1, GLOBAL).counts
    std = SETTINGS.class_noise * 2 ** 0.5
    for bad, why in (({"category_counts": [1.0, 2.0]}, "2 category counts for the 3 categories"),
                     ({"category_counts": None}, "0 category counts for the 3 categories"),
                     ({"category_counts": [-6.1 * std, 1.0, 1.0]}, "is below what noise")):
        spend = {k: v for k, v in {**counts, **bad}.items() if v is not None}
        _, reply = _signed(owners[1], "trained", _spend(client_id=1, **spend), node=6)
        j = _judge(tmp_path, **change).judge(reply, 1, GLOBAL)
        assert not j.counts and why in j.line["rejection"], j.line
    # A VAE run conditions on nothing: category counts there are refused.
    _, vae = _signed(owners[1], "trained", _spend(client_id=1, round=2, **counts), node=6)
    j = _judge(tmp_path, **{**change, "model": "vae"}).judge(vae, 2, GLOBAL)
    assert "3 category counts for the 0 categories" in j.line["rejection"]


def test_condition_counts_sum_the_owners_and_take_back_the_noise_on_empty_categories():
    from genai_models.training_by_sampling import Conditions
    from server.release import condition_counts

    conditions = Conditions(((0, 2), (3, 3)))

    def line(cid, classes, cats, verdict="accepted"):
        return {"verdict": verdict, "owner_entry": {"client_id": cid, "class_counts": classes,
                                                    "category_counts": cats}}

    lines = [line(0, [50.0, 50.0], [80.0, 20.0, 60.0, 45.0, -5.0]),
             line(1, [50.0, 50.0], [70.0, 30.0, 50.0, 40.0, 10.0]),
             line(1, [50.0, 50.0], [0.0, 900.0, 0.0, 0.0, 900.0]),  # a second release
             line(2, [1.0, 0.0], [1e9, 0.0, 1e9, 0.0, 0.0]),  # claims a huge column
             line(3, [50.0, 50.0], [0.0, 900.0, 0.0, 0.0, 900.0], verdict="rejected")]
    counted = condition_counts(lines, conditions)
    assert counted["owners"] == [0, 1, 2]
    # In each column owner 2 weighs as the median owner (100 records): 1e9 x 100/1e9.
    first, second = counted["counts"][:2], counted["counts"][2:]
    assert first == pytest.approx([250.0, 50.0])
    assert second == pytest.approx([210.0, 85.0, 5.0])  # non-negative already: kept
    # A column whose noise made negatives: projected onto the non-negative vectors of its
    # total, the negatives and the noise that balanced them go.
    noisy = condition_counts([line(0, [5.0, 5.0], [9.0, 1.0, 10.0, -8.0, -7.0])], conditions)
    assert noisy["counts"][2:] == pytest.approx([1.0, 0.0, 0.0])  # total max(-5, 1) = 1
    two = condition_counts([lines[0], line(5, [1e6, 1e6], [0.0, 2e6, 0.0, 0.0, 2e6])],
                           conditions)  # with two owners the liar weighs as the honest one
    assert two["counts"] == pytest.approx([80.0, 120.0, 60.0, 45.0, 95.0], abs=0.01)
    assert condition_counts(lines, Conditions()) is None
    assert condition_counts([], conditions) is None

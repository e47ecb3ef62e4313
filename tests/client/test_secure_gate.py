"""The owner's gate around Flower's SecAgg+ mod, against a coordinator that bends the protocol.

Three real owners (the ClientApp with its mods, Flower's own ``secaggplus_mod``) and a
coordinator played by hand, stage by stage, as in Flower's workflow.
"""

import json

import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.supercore.primitives.asymmetric import generate_key_pairs, public_key_to_bytes
from flwr.supercore.task_identity import TaskIdentity

from client.client_app import _plan, app
from genai_models import build_model, resolve
from privacy.distributed_noise import (
    KEY_PROOF,
    KEY_PROOFS,
    MODULUS_RANGE,
    QUANTIZATION_RANGE,
    privacy_of_error,
)
from privacy.experiment import ExperimentConfig
from privacy.policy import OwnerPolicy
from privacy.signing import Signer

NODES = (1, 2, 3)


@pytest.fixture()
def federation(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDSYNTH_HOME", str(tmp_path))
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 99, 0, 1
    proposal = ExperimentConfig.parse(
        {"noise": "distributed", "num-clients": 3, "rounds": 2, "seed": 1, "sample-rate": 0.5,
         "hidden-dim": 32, "latent-dim": 4, "dropout-margin": 0.34}, "test")

    def node(n, **policy):
        return {"client-id": n - 1, "partition-id": n - 1, "num-partitions": 3,
                "epsilon-budget": 8.0, "max-delta": 1e-5, "allow-distributed": True,
                "max-colluders-assumed": 0,
                "ledger-path": str(tmp_path / f"client-{n - 1}.jsonl"),
                "signing-key": str(tmp_path / f"owner-{n - 1}.key"),
                "owner-keys": str(tmp_path), **policy}

    for n in NODES:  # the registry every owner knows: owner-N.pub beside the keys
        Signer.load_or_create(tmp_path / f"owner-{n - 1}.key")

    contexts = {n: Context(run_id=99, node_id=n, node_config=node(n), state=RecordDict(),
                           run_config=proposal.to_run_config()) for n in NODES}
    model = build_model("vae", resolve("digits")[0], hidden_dim=32, latent_dim=4)
    plan = _plan(OwnerPolicy.from_node_config(node(1)), proposal)
    return contexts, model, plan, tmp_path, node


def _send(contexts, n, cfg, content=None, message_type="train"):
    content = content or RecordDict()
    content.config_records[RECORD_KEY_CONFIGS] = ConfigRecord(cfg)
    return app(Message(content=content, dst_node_id=n, message_type=message_type), contexts[n])


def _fitins(model, server_round):
    return RecordDict({
        "fitins.config": ConfigRecord({"server-round": server_round, "run-id": 7}),
        "fitins.parameters": ArrayRecord([t.detach().numpy().copy()
                                          for t in model.state_dict().values()])})


def _setup(plan, samples=3, threshold=None):
    return {Key.STAGE: Stage.SETUP, Key.SAMPLE_NUMBER: samples, Key.SHARE_NUMBER: samples,
            Key.THRESHOLD: threshold or plan.survivors, Key.CLIPPING_RANGE: plan.clipping_range,
            Key.TARGET_RANGE: QUANTIZATION_RANGE, Key.MOD_RANGE: MODULUS_RANGE,
            Key.MAX_WEIGHT: 1.0}


def _spends(folder, owner=0):
    path = folder / f"client-{owner}.jsonl"
    if not path.exists():
        return []
    return [e for e in map(json.loads, path.read_text().splitlines())
            if e["mechanism"] == "dp-sgd"]


def _share_keys(contexts, plan, view=lambda n, keys: keys):
    """Setup and share keys for every owner; the key shares each owner is forwarded.

    ``view(n, keys)`` is the key list the coordinator shows owner n (default: the truth).
    Each owner's signed proof of its keys is forwarded, as the coordinator does.
    """
    keys, proofs = {}, {}
    for n in NODES:
        reply = _send(contexts, n, _setup(plan)).content
        cfg = reply.config_records[RECORD_KEY_CONFIGS]
        keys[n] = [cfg[Key.PUBLIC_KEY_1], cfg[Key.PUBLIC_KEY_2]]
        proofs[str(n)] = json.dumps(dict(reply.config_records[KEY_PROOF]))
    forward = {n: ([], []) for n in NODES}
    for n in NODES:
        reply = _send(contexts, n, {Key.STAGE: Stage.SHARE_KEYS,
                                    **view(n, {str(k): v for k, v in keys.items()})},
                      RecordDict({KEY_PROOFS: ConfigRecord(proofs)}))
        cfg = reply.content.config_records[RECORD_KEY_CONFIGS]
        for dst, text in zip(cfg[Key.DESTINATION_LIST], cfg[Key.CIPHERTEXT_LIST], strict=True):
            forward[dst][0].append(text)
            forward[dst][1].append(n)
    return forward


def _collect(contexts, model, forward, n, server_round=1):
    return _send(contexts, n, {Key.STAGE: Stage.COLLECT_MASKED_VECTORS,
                               Key.CIPHERTEXT_LIST: forward[n][0],
                               Key.SOURCE_LIST: forward[n][1]}, _fitins(model, server_round))


def _through_collect(contexts, model, plan):
    """Setup, share keys and collect for every owner, as Flower's workflow does."""
    forward = _share_keys(contexts, plan)
    for n in NODES:
        reply = _collect(contexts, model, forward, n)
        assert not reply.has_error(), reply.error.reason
        # the share left only masked: Flower's mod cleared the plain arrays
        assert len(reply.content.array_records.get("fitres.parameters", {})) == 0
        assert Key.MASKED_PARAMETERS in reply.content.config_records[RECORD_KEY_CONFIGS]
    return forward


def test_a_message_shaped_like_a_secure_sum_gets_no_share(federation):
    contexts, model, _, folder, _ = federation
    reply = app(Message(content=_fitins(model, 1), dst_node_id=1, message_type="train"),
                contexts[1])
    assert "fitres.parameters" not in reply.content.array_records
    assert "arrays" not in reply.content
    assert dict(reply.content["privacy"])["status"] == "refused"
    assert _spends(folder) == []


def test_an_honest_sum_spends_once_and_signs_the_session(federation):
    contexts, model, plan, folder, _ = federation
    _through_collect(contexts, model, plan)
    spends = _spends(folder)
    assert len(spends) == 1 and spends[0]["noise"] == "distributed"
    assert spends[0]["secagg_participants"] == 3
    assert spends[0]["secagg_threshold"] == plan.survivors
    # an honest unmask request is answered
    reply = _send(contexts, 1, {Key.STAGE: Stage.UNMASK, Key.ACTIVE_NODE_ID_LIST: list(NODES),
                                Key.DEAD_NODE_ID_LIST: []})
    assert not reply.has_error()


@pytest.mark.parametrize("active, dead", [
    ([1, 2, 3], [3]),  # alive and dead at once: both of owner 3's secrets would be handed over
    ([1, 2], [3]),     # any dead list: a pairwise key handed over strips an owner's masks
    ([1, 2], [1]),     # this owner called dead
    ([1], [2, 3]),     # fewer alive than every sum must hold
    ([1, 2, 9], []),   # an owner no key was ever received of
])
def test_inconsistent_unmask_lists_are_refused(federation, active, dead):
    contexts, model, plan, _, _ = federation
    _through_collect(contexts, model, plan)
    with pytest.raises(ValueError):
        _send(contexts, 1, {Key.STAGE: Stage.UNMASK, Key.ACTIVE_NODE_ID_LIST: active,
                            Key.DEAD_NODE_ID_LIST: dead})


def test_an_invented_participant_is_refused_and_nothing_is_spent(federation):
    # The coordinator makes up a second participant (its own keys, no owner's word for
    # them): it would count as an owner whose noise is in the sum.
    contexts, model, plan, folder, _ = federation
    keys = _send(contexts, 1, _setup(plan, samples=2)).content.config_records[RECORD_KEY_CONFIGS]
    fake = [public_key_to_bytes(generate_key_pairs()[1]) for _ in range(2)]
    with pytest.raises(ValueError, match="vouched"):
        _send(contexts, 1, {Key.STAGE: Stage.SHARE_KEYS,
                            "1": [keys[Key.PUBLIC_KEY_1], keys[Key.PUBLIC_KEY_2]], "2": fake})
    for server_round in (1, 2):  # and no collect follows a refused key sharing
        with pytest.raises(ValueError):
            _send(contexts, 1, {Key.STAGE: Stage.COLLECT_MASKED_VECTORS, Key.CIPHERTEXT_LIST: [],
                                Key.SOURCE_LIST: []}, _fitins(model, server_round))
    assert _spends(folder) == []


def test_a_proof_by_an_owner_for_another_node_is_refused(federation):
    # Owner 0's word for node 1's keys, replayed for a node the coordinator controls.
    contexts, model, plan, folder, _ = federation

    def swapped(n, keys):
        return {**keys, "3": keys["2"]} if n == 1 else keys

    with pytest.raises(ValueError, match="vouched|two participants"):
        _share_keys(contexts, plan, swapped)
    assert _spends(folder) == []


def test_an_owner_that_has_not_opted_in_takes_no_part(federation):
    contexts, model, plan, folder, node = federation
    contexts[1].node_config = node(1, **{"allow-distributed": False})
    with pytest.raises(Exception, match="allow-distributed"):
        _send(contexts, 1, _setup(plan))
    assert not (folder / "client-0.jsonl").exists()


def test_a_declining_owner_leaves_the_sum_with_its_signed_record(federation):
    contexts, model, plan, folder, node = federation
    contexts[1].node_config = node(1, **{"epsilon-budget": 0.05})
    reply = _collect(contexts, model, _share_keys(contexts, plan), 1)
    assert reply.has_error()
    record = privacy_of_error(reply.error.reason)
    assert record["status"] == "exhausted" and "entry" in record
    assert _spends(folder) == []


def test_a_secure_sum_message_of_another_type_is_refused(federation):
    # Flower's mod passes any type but "train" straight on: the gate must not.
    contexts, model, plan, folder, _ = federation
    _send(contexts, 1, _setup(plan))
    with pytest.raises(ValueError, match="type"):
        _send(contexts, 1, {Key.STAGE: Stage.SHARE_KEYS}, _fitins(model, 1),
              message_type="train.default")
    assert _spends(folder) == []


def test_a_neighbour_key_that_would_fail_the_mask_is_refused_before_the_spend(federation):
    # (Its owner's proof no longer matches; check_collect would catch the key too.)
    contexts, model, plan, folder, _ = federation

    def garbled(n, keys):  # owner 1 is shown a first key of owner 2 that does not load
        return {**keys, "2": [b"not a key", keys["2"][1]]} if n == 1 else keys

    with pytest.raises(ValueError, match="vouched"):
        _share_keys(contexts, plan, garbled)
    assert _spends(folder) == []


@pytest.mark.parametrize("reason", ['fedsynth-privacy:{"status": null}',
                                    'fedsynth-privacy:{"status": {"a": 1}}',
                                    'fedsynth-privacy:{"x": [1, "a"]}'])
def test_a_crafted_declined_record_is_rejected_not_raised(reason):
    from flwr.app import Error

    from privacy.experiment import ExperimentConfig
    from server.replies import ReplyJudge
    from server.secure_round import _for_judge

    settings = ExperimentConfig.parse({"noise": "distributed", "num-clients": 3,
                                       "dropout-margin": 0.34}, "test")
    asked = Message(content=RecordDict(), dst_node_id=5, message_type="train")
    reply = Message(Error(code=0, reason=reason), reply_to=asked)
    judgement = ReplyJudge(settings, 1, None).judge(_for_judge(reply), 1, {}, 5, masked=True)
    assert judgement.line["verdict"] == "rejected"


def test_two_collects_under_one_session_share_once(federation):
    # Flower's deployment hands each task a copy of the node's context: two collect
    # messages pulled together both find the session fresh. The ledger decides.
    from flwr.common.serde import context_from_proto, context_to_proto

    contexts, model, plan, folder, _ = federation
    forward = _share_keys(contexts, plan)
    copy = {**contexts, 1: context_from_proto(context_to_proto(contexts[1]))}
    first = _collect(contexts, model, forward, 1)
    assert not first.has_error()
    second = _collect(copy, model, forward, 1, server_round=2)
    assert second.has_error()
    assert privacy_of_error(second.error.reason)["status"] == "refused"
    assert len(_spends(folder)) == 1


def test_owners_under_different_proposals_do_not_count_each_other(federation):
    contexts, model, plan, folder, _ = federation
    other = ExperimentConfig.parse({**contexts[2].run_config, "epsilon": 50.0}, "test")
    contexts[2].run_config = other.to_run_config()  # smaller shares for owner 2
    with pytest.raises(ValueError, match="vouched"):
        _share_keys(contexts, plan)
    assert _spends(folder) == []


def test_one_key_under_two_owner_ids_is_refused(federation):
    contexts, model, plan, folder, _ = federation
    for suffix in (".key", ".pub"):
        name = f"owner-1{suffix}"
        (folder / f"owner-2{suffix}").write_bytes((folder / name).read_bytes())
    with pytest.raises(Exception, match="two owner ids"):
        _send(contexts, 1, _setup(plan))


def test_a_session_does_not_carry_into_another_proposal(federation):
    # Flower keeps a node's state across runs of a series with a new run config.
    contexts, model, plan, folder, _ = federation
    forward = _share_keys(contexts, plan)
    other = ExperimentConfig.parse({**contexts[2].run_config, "epsilon": 50.0}, "test")
    contexts[2].run_config = other.to_run_config()
    with pytest.raises(ValueError, match="another proposal"):
        _collect(contexts, model, forward, 2)
    assert _spends(folder, owner=1) == []

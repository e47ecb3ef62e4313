import json

import pytest

from privacy.ledger import GENESIS, Ledger, LedgerBroken, entry_hash, read_ledger


def test_entries_are_chained_and_hashed(tmp_path):
    ledger = Ledger(tmp_path / "ledger.jsonl")
    a = ledger.append({"round": 1, "client_id": 0, "epsilon": 1.5})
    b = ledger.append({"round": 1, "client_id": 1, "epsilon": 1.25})
    assert a["prev_hash"] == GENESIS and b["prev_hash"] == a["hash"]
    lines = [json.loads(line) for line in (tmp_path / "ledger.jsonl").read_text().splitlines()]
    assert lines == [a, b]
    assert all(entry_hash(e) == e["hash"] for e in lines)


def test_reopening_continues_the_chain(tmp_path):
    first = Ledger(tmp_path / "l.jsonl")
    a = first.append({"round": 1})
    b = Ledger(tmp_path / "l.jsonl").append({"round": 2})
    assert b["prev_hash"] == a["hash"]


def test_no_temp_files_are_left_behind(tmp_path):
    ledger = Ledger(tmp_path / "l.jsonl")
    for r in range(3):
        ledger.append({"round": r})
    assert [p.name for p in tmp_path.iterdir()] == ["l.jsonl"]


def test_signed_lines_verify_and_a_replaced_key_stops_the_owner(tmp_path):
    from privacy.signing import Signer, load_owner_keys, verify

    signer = Signer.load_or_create(tmp_path / "owner-0.key")
    ledger = Ledger(tmp_path / "client-0.jsonl", verify=True, signer=signer)
    entry = ledger.append({"round": 1, "client_id": 0, "run_id": 1, "mechanism": "none",
                           "reason": "x"})
    key = load_owner_keys(tmp_path)[0]
    assert entry["key_id"] == signer.key_id and verify(key, entry)
    assert entry["hash"] == entry_hash(entry)  # the signature is outside the hashed body
    assert not verify(key, {**entry, "reason": "y", "hash": entry_hash({**entry, "reason": "y"})})
    assert read_ledger(tmp_path / "client-0.jsonl") == [entry]
    (tmp_path / "owner-0.key").unlink()  # a lost key is a new key: the owner refuses
    with pytest.raises(LedgerBroken, match="signing key was replaced"):
        Ledger(tmp_path / "client-0.jsonl", verify=True,
               signer=Signer.load_or_create(tmp_path / "owner-0.key"))


def refusal(r: int) -> dict:
    return {"round": r, "client_id": 0, "run_id": 1, "mechanism": "none", "reason": "x"}


def test_a_line_cut_by_a_crash_is_dropped_and_a_cut_back_ledger_still_refused(tmp_path):
    path = tmp_path / "client-0.jsonl"
    ledger = Ledger(path, verify=True)
    a = ledger.append(refusal(1))
    b = ledger.append(refusal(2))
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"round": 3, "prev_h')  # the crash hit mid-append
    reopened = Ledger(path, verify=True)
    assert reopened.entries == [a, b] and path.read_bytes() == whole
    assert reopened.append(refusal(3))["prev_hash"] == b["hash"]
    path.write_bytes(whole[: len(whole) // 2])  # half of a completed, pinned line
    with pytest.raises(LedgerBroken, match="cut back"):
        Ledger(path, verify=True)


def test_appending_does_not_rewrite_the_file(tmp_path):
    path = tmp_path / "l.jsonl"
    ledger = Ledger(path)
    ledger.append(refusal(1))
    inode = path.stat().st_ino
    ledger.append(refusal(2))
    assert path.stat().st_ino == inode and len(read_ledger(path)) == 2


@pytest.mark.parametrize("counts, why", [
    ({"class_noise": 10.0, "category_counts": [1.0]}, "category_counts come only with"),
    ({"class_noise": 10.0, "class_counts": [1.0], "category_counts": [float("inf")]},
     "category_counts is not a list"),
    ({"class_noise": 10.0, "class_counts": [1.0], "category_counts": []},
     "category_counts is not a list"),
])
def test_category_counts_are_checked_like_class_counts(counts, why):
    from privacy.ledger import check_entry

    spend = {"round": 1, "client_id": 0, "run_id": 1, "mechanism": "dp-sgd",
             "noise_multiplier": 1.0, "sample_rate": 0.1, "steps": 1, "max_grad_norm": 1.0,
             "delta": 1e-5, "accountant": "rdp", "epsilon": 0.1, "lifetime_epsilon": 0.1,
             "epsilon_budget": 8.0, "prev_hash": GENESIS, "hash": "h", **counts}
    with pytest.raises(LedgerBroken, match=why):
        check_entry("l.jsonl", 1, spend)
    check_entry("l.jsonl", 1, {**spend, "class_counts": [1.0], "category_counts": [2.0, 3.0]})

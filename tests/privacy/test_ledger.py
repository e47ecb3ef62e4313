import json

from privacy.ledger import GENESIS, Ledger, entry_hash


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

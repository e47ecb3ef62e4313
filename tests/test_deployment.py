"""Deployment Engine end to end: real SuperLink and SuperNode processes on loopback.

TLS and SuperNode authentication are on, and each node reads its own data file.

Every process is started in its own session and killed by process group at the end,
also when a test fails.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from client.dataset import load_partition, sklearn_table
from genai_models.data_spec import SCHEMA_DIR
from privacy.ledger import read_ledger
from simulations.certs import make_certificates
from simulations.cli import main

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def federation(tmp_path):
    """Certificates, two owners' data files and a Flower config naming the SuperLink."""
    certs = tmp_path / "certs"
    make_certificates(certs, ["localhost", "127.0.0.1"], nodes=3)
    for i in range(3):
        part = load_partition("digits", i, 3, scheme="iid", alpha=1.0, holdout=0.3, seed=0)
        np.savez(tmp_path / f"owner-{i}.npz", x=part.x * 16, y=part.y)
        # The same owners as tables: breast-cancer rows in the shipped schema's columns.
        frame = sklearn_table("breast-cancer").iloc[i::3]
        frame.to_csv(tmp_path / f"owner-{i}.csv", index=False)
    port = _free_port()
    home = tmp_path / "flwr-home"
    home.mkdir()
    (home / "config.toml").write_text(
        '[superlink]\ndefault = "fedsynth"\n\n[superlink.fedsynth]\n'
        f'address = "127.0.0.1:{port}"\nroot-certificates = "{certs / "ca.crt"}"\n'
    )
    env = {**os.environ, "FLWR_HOME": str(home), "PATH": f"{BIN}:{os.environ['PATH']}",
           "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}
    procs: list[subprocess.Popen] = []

    def start(args, log):
        with open(log, "w") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                    env=env, cwd=tmp_path, start_new_session=True)
        procs.append(proc)
        return proc

    def superlink():
        """The SuperLink, its state in a database file (a restart keeps registrations)."""
        proc = start([BIN / "flower-superlink", "--ssl-ca-certfile", certs / "ca.crt",
                      "--ssl-certfile", certs / "server.crt", "--ssl-keyfile",
                      certs / "server.key", "--enable-supernode-auth",
                      "--disable-runtime-dependency-installation", "--database",
                      tmp_path / "superlink.db", "--host", "127.0.0.1", "--port", str(port)],
                     tmp_path / f"superlink-{len(procs)}.log")
        _wait_for_port(port)
        return proc

    link = superlink()
    # Each owner makes its signing key on its own side; the coordinator gets the .pub only.
    keys = tmp_path / "owner-public-keys"
    keys.mkdir()
    for i in range(3):
        own = tmp_path / f"owner-{i}-secrets" / f"owner-{i}.key"
        own.parent.mkdir()
        assert main(["keygen", str(own)]) == 0
        shutil.copy(own.with_suffix(".pub"), keys / f"owner-{i}.pub")
    yield {"tmp": tmp_path, "certs": certs, "port": port, "env": env, "start": start,
           "keys": keys, "superlink": superlink, "link": link}
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _wait_for_port(port, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"nothing listens on port {port}")


def _supernode(fed, i, *, key=None, node_config=""):
    key = key or fed["certs"] / f"node-{i}.key"
    return fed["start"](
        [BIN / "flower-supernode", "--superlink", f"127.0.0.1:{fed['port']}",
         "--root-certificates", fed["certs"] / "ca.crt", "--auth-supernode-private-key", key,
         "--port", str(_free_port()), "--node-config", node_config],
        fed["tmp"] / f"node-{i}.log",
    )


def _flwr(fed, *args, timeout=120):
    return subprocess.run([BIN / "flwr", *args], env=fed["env"], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout)


# Images over TLS in the long target (make test-faults): the owner's file loading is the
# only difference, and make test keeps under 15 minutes on 2 cores.
@pytest.mark.parametrize(("dataset", "suffix"), [
    pytest.param("digits", "npz", marks=pytest.mark.faults), ("breast-cancer", "csv")])
def test_two_authenticated_owners_train_over_tls(federation, dataset, suffix):
    fed = federation
    schema = SCHEMA_DIR / "breast-cancer.toml"
    for i in range(2):
        reg = _flwr(fed, "supernode", "register", str(fed["certs"] / f"node-{i}.pub"), "fedsynth")
        assert reg.returncode == 0 and "registered successfully" in reg.stdout, reg.stdout
        own = fed["tmp"] / f"owner-{i}.{suffix}"
        ledger = fed["tmp"] / "owner-ledgers" / f"client-{i}.jsonl"
        # An owner of a table names its own schema; an owner of images names none.
        table = f'schema-path="{schema}" ' if suffix == "csv" else ""
        _supernode(fed, i, node_config=f'data-path="{own}" {table}'
                                       f'client-id={i} ledger-path="{ledger}" '
                                       f'signing-key="{fed["tmp"] / f"owner-{i}-secrets" / f"owner-{i}.key"}" '
                                       'epsilon-budget=8.0')
    run_dir = fed["tmp"] / "run"
    proc = _flwr(fed, "run", ".", "fedsynth", "--stream", "--run-config",
                 f'dataset="{dataset}" num-clients=2 rounds=2 hidden-dim=16 '
                 f'synthetic-samples=100 run-dir="{run_dir}" owner-keys="{fed["keys"]}"',
                 timeout=170)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for _ in range(15):  # the SuperLink may record the run's end a moment after the stream
        runs = json.loads(_flwr(fed, "list", "--format", "json").stdout)
        if "finished:" in json.dumps(runs):
            break
        time.sleep(1)
    assert "finished:completed" in json.dumps(runs), runs
    report = json.loads((run_dir / "report.json").read_text())
    assert report["rounds_completed"] == 2
    assert sorted(c["client_id"] for c in report["privacy"]["per_client"]) == [0, 1]
    assert (run_dir / "synthetic" / f"synthetic.{suffix}").is_file()
    # The auditor holds the owners' ledgers and public keys, apart from the run directory.
    audit = subprocess.run([BIN / "fedsynth", "audit", str(run_dir), "--owner-ledgers",
                            str(fed["tmp"] / "owner-ledgers"), "--owner-keys",
                            str(fed["keys"])], capture_output=True, text=True, timeout=120)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "signature" not in audit.stdout
    # Without the owners' ledgers the audit cannot vouch for the run: it says so.
    blind = subprocess.run([BIN / "fedsynth", "audit", str(run_dir)], capture_output=True,
                           text=True, timeout=120)
    assert blind.returncode == 1 and "own ledgers were not given" in blind.stdout
    for i in range(2):  # each owner audits its own spend from its own ledger
        own = subprocess.run([BIN / "fedsynth", "audit", "--node-ledger",
                              str(fed["tmp"] / "owner-ledgers" / f"client-{i}.jsonl"),
                              "--owner-keys", str(fed["keys"])],
                             capture_output=True, text=True, timeout=120)
        assert own.returncode == 0, own.stdout + own.stderr


def test_an_unregistered_supernode_is_refused(federation):
    fed = federation
    node = _supernode(fed, 2)
    code = node.wait(timeout=120)
    log = (fed["tmp"] / "node-2.log").read_text()
    assert code != 0
    assert "Failed to activate SuperNode" in log


def _wait_until(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise TimeoutError(what)


def _spends(path):
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines()
            if json.loads(x)["mechanism"] == "dp-sgd"]


def _run_finished(run_dir):
    return (run_dir / "report.json").exists()


def _restart(fed, i, node_config, timeout=240):
    """Start owner i again, trying until a SuperNode stays up.

    The SuperLink refuses the key until the dead node's heartbeat expires (2 x 30 s).
    """
    deadline = time.time() + timeout
    while time.time() < deadline:
        proc = _supernode(fed, i, node_config=node_config)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            return proc
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # its SuperExec too
        time.sleep(5)
    raise TimeoutError(f"owner {i} could not rejoin")


@pytest.mark.faults
def test_a_restarted_owner_and_a_second_run_never_pass_the_lifetime_budget(federation):
    """P3 with real processes: kill owner 0 mid-run, restart it, then run again."""
    from simulations.accounting import recompute_epsilon

    fed = federation
    ledgers = fed["tmp"] / "owner-ledgers"
    budget = 2.0

    def node_config(i):
        return (f'data-path="{fed["tmp"] / f"owner-{i}.npz"}" client-id={i} '
                f'epsilon-budget={budget} ledger-path="{ledgers / f"client-{i}.jsonl"}" '
                f'signing-key="{fed["tmp"] / f"owner-{i}-secrets" / f"owner-{i}.key"}"')

    nodes = {}
    for i in range(2):
        reg = _flwr(fed, "supernode", "register", str(fed["certs"] / f"node-{i}.pub"), "fedsynth")
        assert reg.returncode == 0, reg.stdout + reg.stderr
        nodes[i] = _supernode(fed, i, node_config=node_config(i))
    proposal = (f'num-clients=2 hidden-dim=16 synthetic-samples=100 epsilon=1.5 '
                f'owner-keys="{fed["keys"]}"')
    first = fed["tmp"] / "run-1"
    submitted = _flwr(fed, "run", ".", "fedsynth", "--run-config",
                      f'{proposal} rounds=4 run-dir="{first}"')
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    # Once the coordinator holds owner 0's first event, kill owner 0 and start it again.
    _wait_until(lambda: any(e["client_id"] == 0 for e in _spends(first / "ledger.jsonl")),
                240, "owner 0 never trained")
    os.killpg(nodes[0].pid, signal.SIGKILL)
    nodes[0].wait(timeout=30)
    nodes[0] = _restart(fed, 0, node_config(0))
    _wait_until(lambda: _run_finished(first), 420, "run 1 did not finish")
    # A second run against the same owners, asking for a fresh 1.5 each.
    second = fed["tmp"] / "run-2"
    proc = _flwr(fed, "run", ".", "fedsynth", "--stream", "--run-config",
                 f'{proposal} rounds=3 run-dir="{second}"', timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (second / "report.json").exists(), proc.stdout[-3000:]
    for i in range(2):
        own = ledgers / f"client-{i}.jsonl"
        spends = _spends(own)
        assert len({e["run_id"] for e in spends}) == 2, f"owner {i} trained in both runs"
        lifetime = recompute_epsilon(spends, delta=1e-5, method="pld")
        assert lifetime <= budget * 1.001, (i, lifetime)
        assert max(e["lifetime_epsilon"] for e in spends) <= budget
        audit = subprocess.run([BIN / "fedsynth", "audit", "--node-ledger", str(own)],
                               capture_output=True, text=True, timeout=120)
        assert audit.returncode == 0, audit.stdout + audit.stderr
    for run_dir in (first, second):
        audit = subprocess.run([BIN / "fedsynth", "audit", str(run_dir), "--owner-ledgers",
                                str(ledgers), "--owner-keys", str(fed["keys"])],
                               capture_output=True, text=True, timeout=120)
        assert audit.returncode == 0, audit.stdout + audit.stderr


def _owner_config(fed, i, budget=8.0):
    return (f'data-path="{fed["tmp"] / f"owner-{i}.npz"}" client-id={i} '
            f'epsilon-budget={budget} '
            f'ledger-path="{fed["tmp"] / "owner-ledgers" / f"client-{i}.jsonl"}" '
            f'signing-key="{fed["tmp"] / f"owner-{i}-secrets" / f"owner-{i}.key"}"')


def _start_owners(fed, n):
    nodes = {}
    for i in range(n):
        reg = _flwr(fed, "supernode", "register", str(fed["certs"] / f"node-{i}.pub"), "fedsynth")
        assert reg.returncode == 0, reg.stdout + reg.stderr
        nodes[i] = _supernode(fed, i, node_config=_owner_config(fed, i))
    return nodes


def _spent_rounds(fed, i, run_id=None):
    """(run id, round) of every spend in owner i's own ledger."""
    return [(e["run_id"], e["round"])
            for e in _spends(fed["tmp"] / "owner-ledgers" / f"client-{i}.jsonl")
            if run_id is None or e["run_id"] == run_id]


@pytest.mark.faults
def test_a_third_of_the_owners_killed_mid_run_the_run_finishes_and_names_them(federation):
    """One of three SuperNodes (33%) is SIGKILLed after its first spend."""
    fed = federation
    nodes = _start_owners(fed, 3)
    run_dir = fed["tmp"] / "run"
    submitted = _flwr(fed, "run", ".", "fedsynth", "--run-config",
                      f'num-clients=3 rounds=4 hidden-dim=16 synthetic-samples=100 '
                      f'round-timeout=90 owner-keys="{fed["keys"]}" run-dir="{run_dir}"')
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    _wait_until(lambda: any(e["client_id"] == 2 for e in _spends(run_dir / "ledger.jsonl")),
                240, "owner 2 never trained")
    os.killpg(nodes[2].pid, signal.SIGKILL)
    _wait_until(lambda: _run_finished(run_dir), 600, "the run did not finish")
    report = json.loads((run_dir / "report.json").read_text())
    assert report["rounds_completed"] == 4
    per_owner = {c["client_id"]: c for c in report["privacy"]["per_client"]}
    assert per_owner[0]["steps"] == per_owner[1]["steps"] > per_owner[2]["steps"] > 0
    killed = [e["node_id"] for e in read_ledger(run_dir / "ledger.jsonl")
              if e["client_id"] == 2][0]
    named = [r for r in report["rejected_updates"] if f"node {killed}" in r]
    assert named, report["rejected_updates"]
    assert f"node {killed}" in (run_dir / "report.md").read_text()
    # The two survivors trained once in every round, the killed owner never twice.
    for i in range(3):
        spent = _spent_rounds(fed, i)
        assert len(spent) == len(set(spent)) and (len(spent) == 4 or i == 2)


@pytest.mark.faults
def test_a_restarted_superlink_keeps_its_nodes_and_the_run_resumes(federation):
    """The SuperLink (and the ServerApp with it) dies mid-run, then starts on its database.

    The nodes reconnect and the same `flwr run` continues from the last checkpoint.
    """
    fed = federation
    _start_owners(fed, 2)
    run_dir = fed["tmp"] / "run"
    config = (f'num-clients=2 rounds=4 hidden-dim=16 synthetic-samples=100 '
              f'owner-keys="{fed["keys"]}" run-dir="{run_dir}"')
    submitted = _flwr(fed, "run", ".", "fedsynth", "--run-config", config)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    _wait_until(lambda: (run_dir / "checkpoints" / "round-002.pt").exists(), 300,
                "round 2 never finished")
    os.killpg(fed["link"].pid, signal.SIGKILL)  # the coordinator's machine goes down
    fed["link"].wait(timeout=30)
    assert not _run_finished(run_dir)
    fed["superlink"]()
    again = _flwr(fed, "run", ".", "fedsynth", "--stream", "--run-config", config,
                  timeout=500)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "resuming" in again.stdout + again.stderr
    report = json.loads((run_dir / "report.json").read_text())
    assert report["rounds_completed"] == 4
    run_ids = {e["run_id"] for e in read_ledger(run_dir / "ledger.jsonl")}
    assert len(run_ids) == 1, "the resumed run kept its run id"
    for i in range(2):  # every round trained once, never spent twice
        assert sorted(_spent_rounds(fed, i)) == [(*run_ids, r) for r in range(1, 5)]
    audit = subprocess.run([BIN / "fedsynth", "audit", str(run_dir), "--owner-ledgers",
                            str(fed["tmp"] / "owner-ledgers"), "--owner-keys",
                            str(fed["keys"])], capture_output=True, text=True, timeout=120)
    assert audit.returncode == 0, audit.stdout + audit.stderr

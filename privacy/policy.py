"""An owner's privacy policy: what protects its records, decided by the owner alone.

It comes from the owner's own ``node_config`` (in simulation: the node config the
simulation builds for each virtual owner from the user's flags) and is validated
once, with the same rules wherever it is read. The coordinator's run config is a
proposal; the owner clamps it to this policy or refuses with a reason, and never
takes epsilon, delta or a file path from it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from privacy.experiment import ConfigError, coerce

DEFAULT_EPSILON_BUDGET = 1.0
"""Lifetime budget of a node that states none: conservative, stated in the README."""
DEFAULT_MAX_DELTA = 1e-5
"""The largest delta a node that states none accepts."""
DEFAULT_MAX_COLLUDERS_ASSUMED = 1
"""Under distributed noise, a node that states none assumes one other owner may collude
with the coordinator: with colluders = 0 the coordinator's own count of honest owners
would decide how much noise guards this owner (one owner it controls, among two, and
ε 8 charged would be ε 12 real)."""
DEFAULT_MAX_RECORDS = 10_000
"""The most records a node that states none declares it holds (P6 with the default
max-delta: 1e-5 x 10,000 = 0.1 < 1)."""

NODE_KEYS = {
    "client-id": "int",
    "partition-id": "int",
    "num-partitions": "int",
    "epsilon-budget": "float",
    "max-delta": "float",
    "max-records": "int",
    "allow-nonprivate": "bool",
    "allow-distributed": "bool",
    "max-colluders-assumed": "int",
    "owner-keys": "str",
    "ledger-path": "str",
    "data-path": "str",
    "schema-path": "str",
    "signing-key": "str",
}


def fedsynth_home() -> Path:
    """Where an owner without a data file keeps its ledger: ``$FEDSYNTH_HOME`` or ~/.fedsynth."""
    return Path(os.environ.get("FEDSYNTH_HOME") or Path.home() / ".fedsynth")


@dataclass(frozen=True)
class OwnerPolicy:
    """One data owner's policy and identity."""

    client_id: int
    """The owner's id in ledgers and reports."""
    epsilon_budget: float
    """Lifetime epsilon budget of this owner's data, over every run it ever joins."""
    max_delta: float
    """The largest delta this owner accepts."""
    max_records: int
    """The most records this owner declares it holds: P6 (delta below 1/records) is
    judged on this public declaration, never on the count of its records, whose exact
    answer would flip when one record is added at the threshold."""
    allow_nonprivate: bool
    """Whether this owner trains without DP when the coordinator proposes epsilon = inf."""
    allow_distributed: bool
    """Whether this owner adds only a share of the noise to a SecAgg+ secure sum (its
    guarantee then rests on the other owners' shares and an honest-but-curious
    coordinator); off by default: an owner adds its full noise unless it opts in."""
    max_colluders_assumed: int
    """Under distributed noise, the fewest colluding owners this owner insists the
    proposal tolerates (0: it accepts the coordinator's ``colluders``)."""
    owner_keys: str
    """Folder of the federation's registered owner public keys (``owner-N.pub``): under
    distributed noise only participants one of them vouches for count (none: refused)."""
    ledger_path: str
    """The owner's own hash-chained ledger: the source of truth for its spend."""
    data_path: str
    """The owner's data file; empty for a simulated owner of a built-in dataset."""
    schema_path: str
    """The public schema of the owner's table (empty: the run's, or a built-in dataset's)."""
    signing_key: str
    """The owner's Ed25519 key that signs every ledger line it sends (made on first use)."""
    partition_id: int | None
    """In simulation: which partition of the data this virtual owner holds."""
    num_partitions: int | None
    """In simulation: how many partitions the data is split into."""

    @classmethod
    def from_node_config(cls, node: Mapping, node_id: int = 0) -> OwnerPolicy:
        """Read and validate a node_config; a bad value raises ConfigError naming the key."""
        values = {}
        for key, value in node.items():
            if key not in NODE_KEYS:
                continue  # Flower and the operator may set other keys of their own
            values[key] = coerce("node_config", key, value, NODE_KEYS[key])
        partition_id = values.get("partition-id")
        num_partitions = values.get("num-partitions")
        if (partition_id is None) != (num_partitions is None):
            raise ConfigError("node_config: partition-id and num-partitions go together")
        client_id = values.get("client-id", partition_id if partition_id is not None else node_id)
        data_path = values.get("data-path", "")
        ledger_path = values.get("ledger-path", "")
        if not ledger_path:
            if data_path:  # one lifetime budget per data file, kept beside it
                ledger_path = str(Path(data_path).with_name(Path(data_path).name
                                                            + ".fedsynth-ledger.jsonl"))
            else:
                ledger_path = str(fedsynth_home() / "ledgers" / f"partition-{client_id}.jsonl")
        signing_key = values.get("signing-key") or str(Path(ledger_path).parent
                                                         / f"owner-{client_id}.key")
        policy = cls(
            client_id=client_id,
            epsilon_budget=values.get("epsilon-budget", DEFAULT_EPSILON_BUDGET),
            max_delta=values.get("max-delta", DEFAULT_MAX_DELTA),
            max_records=values.get("max-records", DEFAULT_MAX_RECORDS),
            allow_nonprivate=values.get("allow-nonprivate", False),
            allow_distributed=values.get("allow-distributed", False),
            max_colluders_assumed=values.get("max-colluders-assumed",
                                             DEFAULT_MAX_COLLUDERS_ASSUMED),
            owner_keys=values.get("owner-keys", ""),
            ledger_path=str(Path(ledger_path).expanduser().resolve()),
            data_path=str(Path(data_path).expanduser().resolve()) if data_path else "",
            schema_path=values.get("schema-path", ""),
            signing_key=str(Path(signing_key).expanduser().resolve()),
            partition_id=partition_id,
            num_partitions=num_partitions,
        )
        return policy.validate()

    def validate(self) -> OwnerPolicy:
        """Check every value; raise ConfigError naming the first bad one."""
        if self.client_id < 0:
            _fail("client-id", self.client_id, "an integer >= 0")
        if not (self.epsilon_budget > 0 and math.isfinite(self.epsilon_budget)):
            _fail("epsilon-budget", self.epsilon_budget,
                  "a finite number > 0 (non-private training is allow-nonprivate=true)")
        if not 0 < self.max_delta < 1:
            _fail("max-delta", self.max_delta, "a number in (0, 1)")
        if not 1 <= self.max_records <= 10**12:
            _fail("max-records", self.max_records, "an integer in 1..10^12")
        if self.max_delta * self.max_records >= 1:
            _fail("max-delta", self.max_delta,
                  f"a number below 1/max-records = {1 / self.max_records:.3g} (P6: delta below "
                  "1/records; lower max-delta, or declare fewer records if it holds fewer)")
        if not 0 <= self.max_colluders_assumed <= 100_000:
            _fail("max-colluders-assumed", self.max_colluders_assumed,
                  "an integer in 0..100000")
        if self.num_partitions is not None and not 0 <= self.partition_id < self.num_partitions:
            _fail("partition-id", self.partition_id, f"an integer in 0..{self.num_partitions - 1}")
        return self

    def to_node_config(self) -> dict:
        """The node_config that states this policy (what the simulation gives each owner)."""
        node = {
            "client-id": self.client_id,
            "epsilon-budget": self.epsilon_budget,
            "max-delta": self.max_delta,
            "max-records": self.max_records,
            "allow-nonprivate": self.allow_nonprivate,
            "allow-distributed": self.allow_distributed,
            "max-colluders-assumed": self.max_colluders_assumed,
            "owner-keys": self.owner_keys,
            "ledger-path": self.ledger_path,
            "data-path": self.data_path,
            "schema-path": self.schema_path,
            "signing-key": self.signing_key,
        }
        if self.partition_id is not None:
            node |= {"partition-id": self.partition_id, "num-partitions": self.num_partitions}
        return node


def _fail(key: str, value, allowed: str):
    raise ConfigError(f"node_config: {key}={value!r} is not allowed; expected {allowed}")

"""The experiment configuration: one typed dataclass, read and validated once at the edge.

Field names are the snake_case of the kebab-case keys of ``[tool.flwr.app.config]``
in ``pyproject.toml``; the defaults are the same (a test keeps them in step).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from privacy.accountant import rdp_epsilon_floor
from client.dataset import PARTITIONS, partition_indices, train_holdout
from client.dp_training import OPTIMIZERS
from client.settings import ACCOUNTANTS, parse_budgets
from genai_models import DATASETS, MODELS
from server.client_dp import MODES as CLIENT_DP_MODES


class ConfigError(ValueError):
    """A bad configuration value: the message names the key, the value and what is allowed."""


@dataclass(frozen=True)
class ExperimentConfig:
    """A federated synthetic-data experiment."""

    model: str = "vae"
    """Generative model family."""
    dataset: str = "digits"
    """digits, breast-cancer, wine (shipped with scikit-learn, no download) or csv."""
    data_path: str = ""
    """The CSV file of dataset csv (split into holdout and owners in simulation)."""
    schema_path: str = ""
    """The public schema (TOML or JSON) of dataset csv."""
    num_clients: int = 10
    """Number of data owners."""
    rounds: int = 20
    """Federated rounds."""
    local_epochs: int = 1
    """Local epochs per round (in expected passes over the owner's data)."""
    epsilon: float = 8.0
    """Each owner's record-level budget; inf trains without DP (the baseline)."""
    delta: float = 1e-5
    """Delta of every owner's (epsilon, delta) guarantee."""
    accountant: str = "rdp"
    """Opacus accountant used for calibration and budget checks."""
    max_grad_norm: float = 1.0
    """Per-sample gradient clipping norm."""
    batch_size: int = 64
    """Expected Poisson batch size (sample rate = batch size / owner's records)."""
    learning_rate: float = 0.3
    """Local learning rate (of clipped gradients, hence large for SGD)."""
    optimizer: str = "sgd"
    """Local optimizer: sgd (the DP recipe) or adam."""
    server_learning_rate: float = 1.0
    """Server learning rate of FedAvgM (1.0 with no momentum is plain FedAvg)."""
    server_momentum: float = 0.5
    """Server momentum of FedAvgM: averages the owners' noise across rounds."""
    hidden_dim: int = 64
    """Width of the model's hidden layers (noise grows with the parameter count)."""
    latent_dim: int = 4
    """VAE latent dimension."""
    partition: str = "dirichlet"
    """How records are split among owners."""
    alpha: float = 1.0
    """Dirichlet concentration (smaller is more skewed)."""
    holdout: float = 0.3
    """Share of records held out for evaluation; they never train (P7)."""
    seed: int = 0
    """Seed of the split, partition, initial model, training and sampling."""
    synthetic_samples: int = 2000
    """Synthetic records released from the global model."""
    run_dir: str = ""
    """Run directory; empty means runs/<UTC timestamp>-<model>-<dataset>."""
    budgets: str = ""
    """Per-owner budget overrides, "OWNER=EPSILON,..." (a [budgets] table in a config file)."""
    client_dp: str = "none"
    """Client-level DP (DP-FedAvg with Flower's server-side wrappers): none, fixed, adaptive."""
    client_noise: float = 1.0
    """Noise multiplier of the client-level Gaussian mechanism."""
    client_clip: float = 1.0
    """Clipping norm of each owner's whole update (initial norm when adaptive)."""
    client_delta: float = 1e-3
    """Delta of the client-level guarantee (must be below 1 / num-clients)."""
    canaries: int = 0
    """Canary audit: insert this many out-of-distribution records into owner 0's data."""

    @property
    def private(self) -> bool:
        """False only for the non-private baseline."""
        return math.isfinite(self.epsilon)

    def to_run_config(self) -> dict:
        """The flat kebab-case dict Flower passes as ``context.run_config``."""
        return {k.replace("_", "-"): v for k, v in asdict(self).items()}

    @classmethod
    def from_mapping(cls, values: dict, source: str) -> ExperimentConfig:
        """Build from kebab- or snake-case keys, naming ``source`` in any error."""
        types = {f.name: f.type for f in fields(cls)}
        kwargs = {}
        for key, value in values.items():
            name = key.replace("-", "_")
            if name == "budgets" and isinstance(value, dict):
                value = ",".join(f"{owner}={eps}" for owner, eps in value.items())
            if name not in types:
                allowed = ", ".join(sorted(k.replace("_", "-") for k in types))
                raise ConfigError(f"{source}: unknown key {key!r}; allowed: {allowed}")
            kwargs[name] = _coerce(source, key, value, types[name])
        return cls(**kwargs)

    @staticmethod
    def read_toml(path: str | Path) -> dict:
        """The key/value table of a TOML config file (its ``[fedsynth]`` table or top level)."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"--config: file {str(path)!r} does not exist") from None
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ConfigError(f"--config: {path}: not valid TOML ({err})") from None
        return data.get("fedsynth", data)

    def validate(self) -> ExperimentConfig:
        """Check every value; raise ConfigError naming the first bad one."""
        _allowed("model", self.model, sorted(MODELS))
        _allowed("dataset", self.dataset, DATASETS)
        if self.dataset == "csv" and not (self.data_path and self.schema_path):
            _fail("dataset", self.dataset, "csv together with --data FILE.csv and --schema FILE")
        if self.canaries and self.dataset != "digits":
            _fail("canaries", self.canaries, "0 for tables (canaries are image records)")
        _allowed("partition", self.partition, PARTITIONS)
        _allowed("accountant", self.accountant, ACCOUNTANTS)
        _allowed("optimizer", self.optimizer, OPTIMIZERS)
        if not 0 <= self.server_momentum < 1:
            _fail("server_momentum", self.server_momentum, "a number in [0, 1)")
        if not (self.server_learning_rate > 0 and math.isfinite(self.server_learning_rate)):
            _fail("server_learning_rate", self.server_learning_rate, "a finite number > 0")
        for key in ("num_clients", "rounds", "local_epochs", "batch_size", "hidden_dim",
                    "latent_dim", "synthetic_samples"):
            if getattr(self, key) < 1:
                _fail(key, getattr(self, key), "an integer >= 1")
        if not self.epsilon > 0:
            _fail("epsilon", self.epsilon, "a number > 0, or inf for no DP")
        if not 0 < self.delta < 1:
            _fail("delta", self.delta, "a number in (0, 1)")
        floor = rdp_epsilon_floor(self.delta)
        if self.accountant == "rdp" and self.epsilon <= 2 * floor:
            _fail("epsilon", self.epsilon,
                  f"a value above {2 * floor:.3g} with the RDP accountant at delta="
                  f"{self.delta:g} (RDP cannot certify less than {floor:.3g}, whatever the "
                  "noise); use --accountant prv for smaller budgets")
        if self.canaries < 0:
            _fail("canaries", self.canaries, "an integer >= 0")
        for key in ("max_grad_norm", "learning_rate", "alpha"):
            if not (getattr(self, key) > 0 and math.isfinite(getattr(self, key))):
                _fail(key, getattr(self, key), "a finite number > 0")
        if not 0 < self.holdout < 1:
            _fail("holdout", self.holdout, "a fraction in (0, 1)")
        try:
            budgets = parse_budgets(self.budgets)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        for owner in budgets:
            if not 0 <= owner < self.num_clients:
                _fail("budgets", self.budgets, f"owner ids in 0..{self.num_clients - 1}")
        _allowed("client_dp", self.client_dp, CLIENT_DP_MODES)
        # Flower's DP wrappers noise the inner strategy's output, but FedAvgM keeps its
        # own un-noised copy of the model and momentum: that state would escape the noise.
        for key, plain in (("server_momentum", 0.0), ("server_learning_rate", 1.0)):
            if self.client_dp != "none" and getattr(self, key) != plain:
                _fail(key, getattr(self, key),
                      f"{plain:g} with --client-dp (FedAvgM's un-noised server state would "
                      "escape the client-level noise)")
        if self.client_dp != "none":
            for key in ("client_noise", "client_clip"):
                if not (getattr(self, key) > 0 and math.isfinite(getattr(self, key))):
                    _fail(key, getattr(self, key), "a finite number > 0")
            if not 0 < self.client_delta < 1 / self.num_clients:
                _fail("client_delta", self.client_delta,
                      f"a value in (0, 1/{self.num_clients}) (one over the number of owners)")
            if self.client_dp == "adaptive" and self.client_noise >= self.num_clients / 10:
                _fail("client_noise", self.client_noise,
                      f"below {self.num_clients / 10:g} with adaptive clipping (Flower's noisy "
                      "clipped count takes std num-clients/20, and must carry less noise)")
        return self

    def smallest_client(self) -> int:
        """Records of the smallest owner's partition (P6 needs it before the run starts)."""
        try:
            train_holdout(self.dataset, self.holdout, self.seed, self.data_path, self.schema_path)
        except ValueError as err:  # a bad schema or CSV: its message names file, row, column
            raise ConfigError(str(err)) from None
        try:
            parts = partition_indices(
                self.dataset, self.holdout, self.seed, self.num_clients, self.partition,
                self.alpha, self.data_path, self.schema_path,
            )
        except ValueError as err:
            raise ConfigError(f"num-clients: {err}") from None
        return min(len(p) for p in parts)

    def check_delta(self) -> None:
        """Invariant P6: delta below 1 / (records of the smallest owner); loads the data."""
        smallest = self.smallest_client()
        if not self.private:
            return
        if smallest == 0 or self.delta >= 1.0 / smallest:
            _fail(
                "delta",
                self.delta,
                f"a value below 1/{smallest} (the smallest owner holds {smallest} records; "
                "a larger delta could release a whole record)",
            )


def _coerce(source: str, key: str, value, kind):
    target = {"int": int, "float": float, "str": str}[str(kind)]
    if target is float and isinstance(value, str) and value.strip().lower() in ("inf", "infinity"):
        return math.inf
    if target is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if target is str and not isinstance(value, str):
        raise ConfigError(f"{source}: {key}={value!r} must be a string")
    try:
        if target is int and isinstance(value, str):
            return int(value)
        return target(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {key}={value!r} must be {target.__name__}") from None


def _fail(key: str, value, allowed: str):
    raise ConfigError(f"{key.replace('_', '-')}={value!r} is not allowed; expected {allowed}")


def _allowed(key: str, value: str, allowed):
    if value not in allowed:
        _fail(key, value, "one of " + ", ".join(allowed))

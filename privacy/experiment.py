"""The experiment the coordinator proposes: one typed dataclass, one validation for every reader.

Field names are the snake_case of the kebab-case keys of ``[tool.flwr.app.config]``
in ``pyproject.toml``; the defaults are the same (a test keeps them in step). The
CLI, the ServerApp and the ClientApp all build it with :meth:`ExperimentConfig.parse`,
so a bad value is refused with the same one-line message wherever it arrives.
It is a *proposal*: what protects an owner's records comes from its own
:class:`privacy.policy.OwnerPolicy`, never from here.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from genai_models import DATASETS, MODELS
from genai_models.training_by_sampling import Conditions
from privacy.accountant import rdp_epsilon_floor

ACCOUNTANTS = ("rdp", "prv")
PARTITIONS = ("iid", "dirichlet")
OPTIMIZERS = ("sgd", "adam")
CLIENT_DP_MODES = ("none", "fixed")
AGGREGATIONS = ("fedavg", "median", "trimmed-mean", "krum")
NOISE_MODES = ("local", "distributed")
COUNTS_COST = 0.1
"""An owner releases its noisy class counts only when they raise its DP-SGD noise by at
most this share (at ε 8 they raise it 0.1%, at ε 1 by 9%, on a budget of 0.5 by far more)."""


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
    """The CSV file of dataset csv in simulation (the holdout is split from it). Owners
    never read a path from here: a simulated owner gets it in its node policy."""
    schema_path: str = ""
    """The public schema (TOML or JSON) of dataset csv."""
    num_clients: int = 10
    """Number of data owners."""
    fraction: float = 1.0
    """Each round, every owner that can still train is selected independently with this
    probability (Poisson sampling of owners, as DP-FedAvg's accounting assumes)."""
    rounds: int = 20
    """Federated rounds."""
    local_epochs: int = 1
    """Local epochs per round (in expected passes over the owner's data)."""
    epsilon: float = 8.0
    """The epsilon each owner is asked to spend in this run at most; inf asks for no DP.

    An owner spends less when its own lifetime budget has less left, and refuses
    inf unless its policy allows non-private training."""
    delta: float = 1e-5
    """Delta proposed for every owner's guarantee (an owner refuses one above its maximum)."""
    accountant: str = "rdp"
    """Opacus accountant used for calibration and budget checks."""
    max_grad_norm: float = 1.0
    """Per-sample gradient clipping norm C."""
    sample_rate: float = 0.25
    """Poisson sampling rate q of every DP step: public, the same for every owner, so it
    reveals nothing of an owner's record count."""
    batch_size: int = 64
    """Public size that divides the summed clipped gradients, the GAN's fixed number of
    fakes per step, and the non-private baseline's batch."""
    learning_rate: float = 0.6
    """Local learning rate (of clipped gradients, hence large for SGD)."""
    optimizer: str = "sgd"
    """Local optimizer: sgd (the DP recipe) or adam."""
    aggregation: str = "fedavg"
    """How the coordinator combines accepted updates: fedavg (FedAvgM), median,
    trimmed-mean or krum (Flower's strategies; robust to a malicious owner's update)."""
    server_learning_rate: float = 1.0
    """Server learning rate of FedAvgM (1.0 with no momentum is plain FedAvg)."""
    server_momentum: float = 0.5
    """Server momentum of FedAvgM: averages the owners' noise across rounds."""
    hidden_dim: int = 64
    """Width of the model's hidden layers (noise grows with the parameter count)."""
    latent_dim: int = 4
    """Latent dimension: the VAE's code, the GAN's noise vector."""
    generator_average: float = 0.33
    """The GAN releases an average of the rounds' generators (their mean, then an
    exponential moving average whose time constant is this share of the run's rounds;
    post-processing, no privacy cost); 0 releases the last round's generator. The VAE
    always releases its last model."""
    partition: str = "dirichlet"
    """How records are split among owners."""
    alpha: float = 1.0
    """Dirichlet concentration (smaller is more skewed)."""
    holdout: float = 0.3
    """Share of records held out for evaluation; they never train (P7)."""
    seed: int = 0
    """Seed of public randomness only: split, partition, initial model, release sampling.
    DP noise and Poisson sampling draw from the operating system's entropy."""
    synthetic_samples: int = 2000
    """Synthetic records released from the global model."""
    run_dir: str = ""
    """Run directory; empty means runs/<UTC timestamp>-<model>-<dataset>."""
    round_timeout: float = 3600.0
    """Seconds the coordinator waits for a round's replies; a node silent for longer is
    left out of that round (a silent node cannot stall the federation)."""
    owner_keys: str = ""
    """Folder of the owners' registered public signing keys (``owner-N.pub``). Empty: each
    owner's first signed reply pins its key for the rest of the run (trust on first use);
    the audit checks every signature against the keys the owners give it."""
    client_dp: str = "none"
    """Client-level DP (DP-FedAvg, server-side fixed clipping): none or fixed."""
    client_noise: float = 1.0
    """Noise multiplier of the client-level Gaussian mechanism."""
    client_clip: float = 1.0
    """Clipping norm of each owner's whole update."""
    client_delta: float = 1e-3
    """Delta of the client-level guarantee (must be below 1 / num-clients)."""
    canaries: int = 0
    """Canary audit: insert this many out-of-distribution records into owner 0's data."""
    balance: bool = False
    """Release every class in equal shares (a public choice that costs no privacy).
    Otherwise each owner releases its class counts once per run with Gaussian noise
    (charged to its budget) and the release follows their noisy sum."""
    class_noise: float = 10.0
    """Standard deviation of the Gaussian noise on each class count an owner releases
    (the counts' L2 sensitivity is 1: one record moves one count by one)."""
    noise: str = "local"
    """Where DP-SGD noise is added: local (each owner noises its own update fully; trusts
    no one) or distributed (one DP-SGD step a round; each owner adds a share and Flower's
    SecAgg+ reveals only the sum, which carries the full noise while enough honest owners
    are in it; every owner every round; for the GAN the sum is the discriminator's
    real-record gradient, and the coordinator takes the fakes' term and the generator's
    step)."""
    dropout_margin: float = 0.2
    """Distributed noise: share of the owners that may drop out of a round; a sum of fewer
    than the rest is never released (the round is discarded)."""
    colluders: int = 0
    """Distributed noise: owners that may collude with the coordinator; their noise shares
    are not counted on, so every owner adds more."""

    @property
    def private(self) -> bool:
        """False only when the proposal asks for the non-private baseline."""
        return math.isfinite(self.epsilon)

    @property
    def distributed(self) -> bool:
        """Whether owners add shares of the noise to a secure sum (one step a round)."""
        return self.noise == "distributed"

    @property
    def steps_per_round(self) -> int:
        """DP-SGD steps an owner is asked for each round.

        Local noise: local epochs / q, in expectation. Distributed noise: one (the sum
        of one step's shares is one Gaussian step).
        """
        if self.distributed:
            return 1
        return max(1, round(self.local_epochs / self.sample_rate))

    @property
    def releases_counts(self) -> bool:
        """Whether owners release noisy class (and category) counts in this run.

        Not under ``--balance``, and not under owner-level DP: the counts carry
        record-level noise only, so a whole owner's records would show in them (in the
        release's class shares and a GAN's conditions) beyond what owner-level DP says.
        """
        return not self.balance and self.client_dp == "none"

    def conditions(self) -> Conditions:
        """The columns the GAN's training-by-sampling conditions on (public schema).

        None for the VAE and for images. Their category counts come with the class counts.
        """
        from genai_models import resolve

        if self.model != "gan":
            return Conditions()
        heads = resolve(self.dataset, self.schema_path)[0].heads
        return Conditions(heads.conditioned if heads else ())

    @classmethod
    def field_docs(cls) -> dict[str, str]:
        """Each key's docstring (kebab-case key → text): the help of its flag."""
        import ast
        import inspect
        import textwrap

        body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
        docs = {}
        for field_node, doc in zip(body, body[1:], strict=False):
            if (isinstance(field_node, ast.AnnAssign) and isinstance(doc, ast.Expr)
                    and isinstance(doc.value, ast.Constant)):
                docs[field_node.target.id.replace("_", "-")] = " ".join(doc.value.value.split())
        return docs

    def to_run_config(self) -> dict:
        """The flat kebab-case dict Flower passes as ``context.run_config``."""
        return {k.replace("_", "-"): v for k, v in asdict(self).items()}

    @classmethod
    def parse(cls, values: dict, source: str) -> ExperimentConfig:
        """Build from kebab- or snake-case keys and validate: the one way in for every reader."""
        return cls.from_mapping(values, source).validate()

    @classmethod
    def from_mapping(cls, values: dict, source: str) -> ExperimentConfig:
        """Build from kebab- or snake-case keys, naming ``source`` in any error."""
        types = {f.name: f.type for f in fields(cls)}
        kwargs = {}
        for key, value in values.items():
            name = key.replace("-", "_")
            if name not in types:
                allowed = ", ".join(sorted(k.replace("_", "-") for k in types))
                raise ConfigError(f"{source}: unknown key {key!r}; allowed: {allowed}")
            kwargs[name] = coerce(source, key, value, types[name])
        return cls(**kwargs)

    @staticmethod
    def read_toml(path: str | Path) -> dict:
        """The key/value table of a TOML config file (its ``[fedsynth]`` table or top level)."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"--config: file {str(path)!r} does not exist") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise ConfigError(f"--config: {path}: not valid TOML ({err})") from None
        return dict(data.get("fedsynth", data))

    def validate(self) -> ExperimentConfig:
        """Check every value; raise ConfigError naming the first bad one."""
        _allowed("model", self.model, sorted(MODELS))
        _allowed("dataset", self.dataset, DATASETS)
        if self.dataset == "csv" and not self.schema_path:
            _fail("dataset", self.dataset, "csv together with its public schema (--schema FILE)")
        if self.canaries and self.dataset != "digits":
            _fail("canaries", self.canaries, "0 for tables (canaries are image records)")
        _allowed("partition", self.partition, PARTITIONS)
        _allowed("accountant", self.accountant, ACCOUNTANTS)
        _allowed("optimizer", self.optimizer, OPTIMIZERS)
        if not 0 <= self.server_momentum < 1:
            _fail("server_momentum", self.server_momentum, "a number in [0, 1)")
        if not (0 < self.server_learning_rate <= 100):
            _fail("server_learning_rate", self.server_learning_rate, "a number in (0, 100]")
        # The release is judged by classifiers and distances that need rows of every class:
        # fewer than 100 would fail after the owners have spent their budgets.
        for key, low, high in (("num_clients", 1, 100_000), ("rounds", 1, 100_000),
                               ("local_epochs", 1, 1000), ("batch_size", 1, 100_000),
                               ("hidden_dim", 1, 4096), ("latent_dim", 1, 1024),
                               ("synthetic_samples", 100, 1_000_000)):
            if not low <= getattr(self, key) <= high:
                _fail(key, getattr(self, key), f"an integer in {low}..{high}")
        if not self.epsilon > 0:
            _fail("epsilon", self.epsilon, "a number > 0, or inf for no DP")
        if not 0 < self.delta < 1:
            _fail("delta", self.delta, "a number in (0, 1)")
        floor = rdp_epsilon_floor(self.delta)
        if self.private and self.accountant == "rdp" and self.epsilon <= 2 * floor:
            _fail("epsilon", self.epsilon,
                  f"a value above {2 * floor:.3g} with the RDP accountant at delta="
                  f"{self.delta:g} (RDP cannot certify less than {floor:.3g}, whatever the "
                  "noise); use --accountant prv for smaller budgets")
        if not 1 <= self.round_timeout <= 7 * 86_400:
            _fail("round_timeout", self.round_timeout, "seconds in 1..604800")
        if not 0 < self.fraction <= 1:
            _fail("fraction", self.fraction, "a probability in (0, 1]")
        if not 0 < self.sample_rate <= 1:
            _fail("sample_rate", self.sample_rate, "a probability in (0, 1]")
        if self.steps_per_round > 10_000:
            _fail("sample_rate", self.sample_rate,
                  f"at least local-epochs/10000 = {self.local_epochs / 10_000:g} (at most "
                  "10000 DP steps an owner each round)")
        if not 0 <= self.seed < 2**32:
            _fail("seed", self.seed, "an integer in 0..4294967295")
        if not 0.1 <= self.class_noise <= 1e6:
            _fail("class_noise", self.class_noise, "a number in [0.1, 1e6]")
        if not 0 <= self.canaries <= 10_000:
            _fail("canaries", self.canaries, "an integer in 0..10000")
        for key in ("max_grad_norm", "learning_rate", "alpha"):
            if not (getattr(self, key) > 0 and math.isfinite(getattr(self, key))):
                _fail(key, getattr(self, key), "a finite number > 0")
        if not 0 <= self.generator_average <= 1:
            _fail("generator_average", self.generator_average, "a share of the rounds in [0, 1]")
        if not 0 < self.holdout < 1:
            _fail("holdout", self.holdout, "a fraction in (0, 1)")
        _allowed("client_dp", self.client_dp, CLIENT_DP_MODES)
        _allowed("aggregation", self.aggregation, AGGREGATIONS)
        if self.aggregation != "fedavg":
            if self.client_dp != "none":
                _fail("aggregation", self.aggregation,
                      "fedavg with --client-dp (owner-level noise is calibrated for a sum)")
            for key, plain in (("server_momentum", 0.0), ("server_learning_rate", 1.0)):
                if getattr(self, key) != plain:
                    _fail(key, getattr(self, key),
                          f"{plain:g} with --aggregation {self.aggregation} (momentum and the "
                          "server learning rate are FedAvgM's)")
        # Flower's DP wrappers noise the inner strategy's output, but FedAvgM keeps its
        # own un-noised copy of the model and momentum: that state would escape the noise.
        for key, plain in (("server_momentum", 0.0), ("server_learning_rate", 1.0)):
            if self.client_dp != "none" and getattr(self, key) != plain:
                _fail(key, getattr(self, key),
                      f"{plain:g} with --client-dp (FedAvgM's un-noised server state would "
                      "escape the client-level noise)")
        self._validate_noise()
        if self.client_dp != "none":
            for key in ("client_noise", "client_clip"):
                if not (getattr(self, key) > 0 and math.isfinite(getattr(self, key))):
                    _fail(key, getattr(self, key), "a finite number > 0")
            if not 0 < self.client_delta < 1 / self.num_clients:
                _fail("client_delta", self.client_delta,
                      f"a value in (0, 1/{self.num_clients}) (one over the number of owners)")
        return self

    def _validate_noise(self) -> None:
        """Distributed noise: what SecAgg+ and a one-step-a-round accounting need."""
        from privacy.distributed_noise import MAX_OWNERS, survivors

        _allowed("noise", self.noise, NOISE_MODES)
        if not 0 <= self.dropout_margin < 1:
            _fail("dropout_margin", self.dropout_margin, "a share in [0, 1)")
        if not 0 <= self.colluders <= 100_000:
            _fail("colluders", self.colluders, "an integer in 0..100000")
        if not self.distributed:
            return
        needs = {"private": (self.private, "a finite epsilon (distributed noise is DP noise)"),
                 "optimizer": (self.model != "gan" or self.optimizer == "adam",
                               "adam for the GAN (the coordinator's discriminator step; "
                               "try --optimizer adam --learning-rate 0.002)"),
                 "fraction": (self.fraction == 1.0, "1 (every owner every round: the shares "
                                                    "are calibrated to the owners in the sum)"),
                 "client_dp": (self.client_dp == "none", "none with distributed noise"),
                 "aggregation": (self.aggregation == "fedavg", "fedavg (a secure sum cannot "
                                                              "be robustly aggregated)")}
        for key, (ok, allowed) in needs.items():
            if not ok:
                value = self.epsilon if key == "private" else getattr(self, key)
                _fail("epsilon" if key == "private" else key, value,
                      f"{allowed} with --noise distributed")
        if not 2 <= self.num_clients <= MAX_OWNERS:
            _fail("num_clients", self.num_clients,
                  f"2..{MAX_OWNERS} with --noise distributed (SecAgg+'s modulus)")
        least = survivors(self.num_clients, self.dropout_margin)
        if least < 2:
            _fail("dropout_margin", self.dropout_margin,
                  f"a share that leaves at least 2 of the {self.num_clients} owners in a sum")
        if 2 * least <= self.num_clients + self.colluders:
            _fail("dropout_margin" if self.colluders == 0 else "colluders",
                  self.dropout_margin if self.colluders == 0 else self.colluders,
                  f"values that leave the {least} owners every sum must hold a majority of "
                  f"the {self.num_clients} owners beyond {self.colluders} colluders (else two "
                  "disjoint groups could each unmask one owner's share)")


ADDED_AFTER_SIGNING = ("generator-average",)
"""Keys added after owners had signed proposals: in the digest only when set away from
their default, so the runs recorded before them keep their digest (and their audit)."""


def proposal_digest(config: ExperimentConfig) -> str:
    """sha256 of a proposal's canonical JSON: owners sign it into every event they record.

    It binds each owner's record to the exact proposal it trained under, so the
    config.toml an auditor reads can be checked against what the owners were asked.
    """
    values, defaults = config.to_run_config(), ExperimentConfig().to_run_config()
    for key in ADDED_AFTER_SIGNING:
        if values[key] == defaults[key]:
            del values[key]
    text = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def coerce(source: str, key: str, value, kind):
    """``value`` as the field's type, strictly: no booleans as numbers, no silent truncation."""
    target = {"int": int, "float": float, "str": str, "bool": bool}[str(kind)]
    if isinstance(value, str) and target is not str:
        text = value.strip().lower()
        if target is float and text in ("inf", "infinity"):
            return math.inf
        if target is bool and text in ("true", "false"):
            return text == "true"
        try:
            value = int(text) if target is int else float(text)
        except ValueError:
            kind_text = "an integer (digits only)" if target is int else "a number"
            raise ConfigError(f"{source}: {key}={value!r} must be {kind_text}") from None
    if target is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key}={value!r} must be true or false")
        return value
    if target is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {key}={value!r} must be a string")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{source}: {key}={value!r} must be {target.__name__}")
    if target is int:
        if isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{source}: {key}={value!r} must be a whole number")
        return int(value)
    if math.isnan(value) or value == -math.inf:
        raise ConfigError(f"{source}: {key}={value!r} must be a number")
    return float(value)


def _fail(key: str, value, allowed: str):
    raise ConfigError(f"{key.replace('_', '-')}={value!r} is not allowed; expected {allowed}")


def _allowed(key: str, value: str, allowed):
    if value not in allowed:
        _fail(key, value, "one of " + ", ".join(allowed))

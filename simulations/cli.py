"""The ``fedsynth`` command: the friendly front door to the Flower apps.

Usage errors print one line naming the flag or key, the bad value and what is
allowed, and exit with code 2 before anything is written.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import sys
import tomllib
import warnings
from pathlib import Path

from genai_models import DATASETS, MODELS
from privacy.experiment import (
    ACCOUNTANTS,
    AGGREGATIONS,
    CLIENT_DP_MODES,
    NOISE_MODES,
    OPTIMIZERS,
    PARTITIONS,
    ConfigError,
    ExperimentConfig,
)
from server.run_dir import run_dir_for

# Flags for config keys; every flag overrides the --config file. Values stay text here
# and are typed strictly by ExperimentConfig (so "--rounds 2.7" is refused, not 2).
SIMULATE_FLAGS = (
    "model", "dataset", "num-clients", "fraction", "rounds", "local-epochs", "epsilon",
    "delta", "accountant", "sample-rate", "batch-size", "learning-rate", "optimizer",
    "aggregation", "round-timeout", "server-learning-rate", "server-momentum", "hidden-dim",
    "latent-dim", "generator-average", "partition", "alpha", "holdout", "seed",
    "synthetic-samples", "client-dp", "client-noise", "client-clip", "client-delta", "canaries",
    "balance", "class-noise", "noise", "dropout-margin", "colluders",
)
SWITCHES = ("balance",)  # flags without a value: present means true
CHOICES = {"model": MODELS, "dataset": DATASETS, "accountant": ACCOUNTANTS,
           "optimizer": OPTIMIZERS, "aggregation": AGGREGATIONS, "partition": PARTITIONS,
           "client-dp": CLIENT_DP_MODES, "noise": NOISE_MODES}


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors on one line (no usage block), exit code 2."""

    def error(self, message: str):
        """Print ``fedsynth: error: MESSAGE`` and exit 2."""
        print(f"fedsynth: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _flag_help(key: str, docs: dict[str, str], defaults: dict) -> str:
    """A flag's help: its key's docstring, its default and its allowed values."""
    allowed = f"; one of {', '.join(CHOICES[key])}" if key in CHOICES else ""
    return f"{docs[key]} (default {defaults[key]!r}{allowed})".replace("%", "%%")


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="fedsynth",
        description="Federated, differentially private synthetic data with Flower and Opacus.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    sim = sub.add_parser(
        "simulate",
        help="train a generative model across simulated data owners and release synthetic data",
    )
    sim.add_argument("--config", type=Path, help="TOML file with experiment keys")
    docs, defaults = ExperimentConfig.field_docs(), ExperimentConfig().to_run_config()
    for flag in SIMULATE_FLAGS:
        value = {"action": "store_const", "const": "true"} if flag in SWITCHES else \
            {"metavar": flag.split("-")[-1].upper()}
        sim.add_argument(f"--{flag}", default=None, help=_flag_help(flag, docs, defaults),
                         **value)
    sim.add_argument("--budgets", help="owners' own lifetime budgets, OWNER=EPSILON,... "
                     "(default: every owner's is --epsilon)")
    sim.add_argument("--owner-ledgers", type=Path,
                     help="folder of the owners' own ledgers (default: the run's ledgers/); "
                     "reuse one to keep lifetime budgets across simulations")
    sim.add_argument("--data", type=Path, help="CSV file of --dataset csv")
    sim.add_argument("--schema", type=Path, help="public schema (TOML/JSON) of --dataset csv")
    sim.add_argument("--out", type=Path, help="run directory (default runs/<UTC time>-<name>)")
    sim.add_argument("--verbose", action="store_true", help="show Flower's and Ray's logs")
    sim.add_argument("--resume", type=Path, metavar="RUN_DIR",
                     help="continue an unfinished run after its last checkpoint, with its own "
                     "configuration and owners (no other flags); no round is spent twice")
    aud = sub.add_parser(
        "audit",
        help="verify a run's ledger and recompute every epsilon with dp-accounting",
        description="Exit 0: chain intact and anchored, every owner event signed by its "
        "owner and matching the owner's own ledger, every epsilon recomputed within 1%% and "
        "within budget; 1: a finding (named); 2: a ledger cannot be read or its chain is "
        "broken.",
    )
    aud.add_argument("run_dir", nargs="?", type=Path, help="the run directory")
    aud.add_argument("--node-ledger", type=Path, help="audit one owner's own ledger alone")
    aud.add_argument("--owner-ledgers", type=Path,
                     help="folder of the owners' own ledgers (client-N.jsonl) to compare with "
                     "the run's (default: RUN_DIR/ledgers)")
    aud.add_argument("--run-id", type=int,
                     help="the run's id as the owners know it (default: the id the run "
                     "recorded, which the owners' ledgers must attest)")
    aud.add_argument("--owner-keys", type=Path,
                     help="folder of the owners' public signing keys (owner-N.pub), as the "
                     "owners gave them (default: the owner-ledgers folder)")
    sw = sub.add_parser("sweep", help="run the privacy-utility trade-off over ε, models, seeds")
    sw.add_argument("--epsilons", default="0.5,1,2,4,8,inf")
    sw.add_argument("--models", default="vae")
    sw.add_argument("--dataset", default="digits")
    sw.add_argument("--seeds", type=int, default=3, help="number of seeds (0..N-1)")
    sw.add_argument("--out", type=Path, default=Path("runs/sweep"))
    sw.add_argument("--rounds", type=int, default=None)
    sw.add_argument("--num-clients", type=int, default=None)
    sc = sub.add_parser("schema", help="work with table schemas")
    sc_sub = sc.add_subparsers(dest="schema_command", required=True)
    inf = sc_sub.add_parser("infer", help="draft a schema from a CSV (it leaks; review it)")
    inf.add_argument("csv", type=Path)
    inf.add_argument("--target", help="the target column (default: the last one)")
    inf.add_argument("--out", type=Path, help="write the TOML here (default: standard output)")
    ev = sub.add_parser(
        "evaluate", help="re-judge a run's release: utility, fidelity, membership attacks"
    )
    ev.add_argument("run_dir", type=Path)
    ev.add_argument("--strict", action="store_true",
                    help="exit 1 when the release is flagged (collapsed rows, a detector "
                    "that sees through it, TSTR at the majority-class rate)")
    certs = sub.add_parser(
        "certs", help="create a CA, a SuperLink certificate and SuperNode keys for deployment"
    )
    certs.add_argument("out_dir", type=Path)
    certs.add_argument("--host", action="append", default=[],
                       help="SuperLink host name or address for the certificate (repeatable; "
                       "localhost, 127.0.0.1 and ::1 are always included)")
    certs.add_argument("--nodes", type=int, default=2, help="SuperNode key pairs to create")
    keygen = sub.add_parser(
        "keygen", help="an owner makes its Ed25519 signing key (on its own machine)",
        description="Writes KEY (private, mode 0600; the node_config's signing-key) and its "
        "public half beside it (owner-N.key -> owner-N.pub): give the .pub to the coordinator "
        "(run config owner-keys) and to auditors (fedsynth audit --owner-keys). An existing "
        "key is never overwritten.",
    )
    keygen.add_argument("key", type=Path, help="where to write the key, e.g. owner-0.key")
    return parser


def _resolve_config(args: argparse.Namespace):
    """The validated experiment, and the policy of every simulated owner."""
    from simulations.owners import budgets_text, check_delta, owner_policies, parse_budgets

    values = ExperimentConfig.read_toml(args.config) if args.config else {}
    budgets = budgets_text(values.pop("budgets", ""))
    source = f"--config {args.config}" if args.config else "flags"
    config = ExperimentConfig.from_mapping(values, source)
    overrides = {flag: getattr(args, flag.replace("-", "_")) for flag in SIMULATE_FLAGS}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    merged = {**config.to_run_config(), **overrides}
    if args.out is not None:
        merged["run-dir"] = str(args.out)
    for flag, key in (("data", "data-path"), ("schema", "schema-path")):
        if getattr(args, flag) is not None:
            merged[key] = str(getattr(args, flag))
    for key in ("data-path", "schema-path"):  # owners' processes may start elsewhere
        if merged.get(key):
            merged[key] = str(Path(merged[key]).resolve())
    if args.data is not None and "dataset" not in overrides:
        merged["dataset"] = "csv"
    if args.data is not None and not merged.get("schema-path"):
        raise ConfigError(f"--data {args.data} needs its public schema: --schema FILE.toml "
                          f"(draft one with `fedsynth schema infer {args.data}`, then review "
                          "it: a draft read from the rows leaks them)")
    if args.schema is not None and merged.get("dataset") != "csv":
        raise ConfigError("--schema is for --data FILE.csv (dataset csv); built-in datasets "
                          "ship their own schemas")
    config = ExperimentConfig.parse(merged, "flags")
    budgets = parse_budgets(args.budgets if args.budgets is not None else budgets,
                            config.num_clients)
    sizes = check_delta(config)
    run_dir = run_dir_for(config.run_dir, config.model, config.dataset)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out: {run_dir} is a file; choose a new directory")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(f"--out: {run_dir} exists and is not empty; choose a new directory")
    config = ExperimentConfig.parse({**merged, "run-dir": str(run_dir.resolve())}, "flags")
    if args.owner_ledgers is not None and args.owner_ledgers.exists() \
            and not args.owner_ledgers.is_dir():
        raise ConfigError(f"--owner-ledgers: {args.owner_ledgers} is a file; name a folder "
                          "(the owners' ledgers live in it)")
    ledger_dir = (args.owner_ledgers or run_dir / "ledgers").resolve()
    return config, owner_policies(config, sizes, budgets, ledger_dir)


def _resumed(args: argparse.Namespace):
    """The configuration, owners and run id of an unfinished run (``--resume RUN_DIR``)."""
    from server.checkpoints import load_latest
    from simulations.owners import owner_policies, owner_sizes

    given = [f"--{k}" for k in (*SIMULATE_FLAGS, "config", "budgets", "owner-ledgers", "data",
                                "schema", "out") if getattr(args, k.replace("-", "_")) is not None]
    if given:
        raise ConfigError(f"--resume takes the run's own configuration; drop {', '.join(given)}")
    run_dir = args.resume
    if not (run_dir / "config.toml").is_file() or not (run_dir / SIMULATION).is_file():
        raise ConfigError(f"--resume: {run_dir} is not a run that fedsynth simulate started "
                          f"(no config.toml or {SIMULATION})")
    config = ExperimentConfig.parse(ExperimentConfig.read_toml(run_dir / "config.toml"),
                                    f"{run_dir / 'config.toml'}")
    try:
        owners = json.loads((run_dir / SIMULATION).read_text("utf-8"))
        budgets = {int(k): float(v) for k, v in owners["budgets"].items()}
        ledgers = owners["owner_ledgers"]
        if not isinstance(ledgers, str):
            raise TypeError("owner_ledgers is not a path")
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise ConfigError(f"--resume: {run_dir / SIMULATION} is damaged ({err}); it should "
                          'hold {"budgets": {OWNER: EPSILON}, "owner_ledgers": PATH}') from None
    policies = owner_policies(config, owner_sizes(config), budgets, Path(ledgers))
    try:
        latest = load_latest(run_dir)
    except Exception as err:  # a checkpoint cut short by a crash is named, not a traceback
        raise ConfigError(f"--resume: the last checkpoint of {run_dir} cannot be read "
                          f"({type(err).__name__}); delete it to resume from the one before") \
            from None
    if latest is None:
        raise ConfigError(f"--resume: {run_dir} has no checkpoint to resume from")
    return config, policies, int(latest["server"]["run_id"])


# The simulated owners' policies (budgets, ledger folder), kept so that --resume finds them.
SIMULATION = "simulation.json"


def _simulate(args: argparse.Namespace) -> int:
    from rich.console import Console

    from simulations.interrupt import stop_on_interrupt
    from simulations.runner import simulate

    files = {}
    if args.resume is not None:
        config, policies, run_id = _resumed(args)
    else:
        config, policies = _resolve_config(args)
        run_id = None
        owners = {"budgets": {str(p.client_id): p.epsilon_budget for p in policies}
                  if config.private else {},
                  "owner_ledgers": str(Path(policies[0].ledger_path).parent)}
        files[SIMULATION] = json.dumps(owners, indent=2) + "\n"  # written once the run holds

    console = Console(highlight=False)
    if config.private:
        budgets = sorted({p.epsilon_budget for p in policies})
        spread = f"{budgets[0]:g}" if len(budgets) == 1 else f"{budgets[0]:g}-{budgets[-1]:g}"
        dp = (f"ε ≤ {config.epsilon:g} this run, δ = {config.delta:g}, owners' lifetime "
              f"budgets {spread}")
    else:
        dp = "no DP"
    console.print(
        f"fedsynth simulate: {config.model} on {config.dataset}, {config.num_clients} owners "
        f"({config.partition}), {config.rounds} rounds, {dp}"
    )
    stop_on_interrupt(Path(config.run_dir))
    run_dir = simulate(config, policies, verbose=args.verbose, resume_run_id=run_id,
                       files=files)
    console.print(f"artifacts: {run_dir}")
    failed = json.loads((run_dir / "report.json").read_text("utf-8")).get("evaluation_error")
    return 1 if failed else 0


def _audit(args: argparse.Namespace) -> int:
    from rich.console import Console

    from privacy.atomic import write_text
    from privacy.ledger import LedgerBroken
    from simulations.audit import EXIT_BROKEN, audit_ledger_file, audit_run
    from simulations.audit_table import render_audit
    from simulations.privacy_plot import plot_privacy_budget

    if (args.run_dir is None) == (args.node_ledger is None):
        raise ConfigError("audit: give either RUN_DIR or --node-ledger PATH")
    console = Console(highlight=False)
    try:
        if args.node_ledger is not None:
            result = audit_ledger_file(args.node_ledger, args.owner_keys)
        else:
            result = audit_run(args.run_dir, args.owner_ledgers, args.owner_keys, args.run_id)
    except LedgerBroken as err:
        print(f"fedsynth audit: ledger broken: {err}", file=sys.stderr)
        return EXIT_BROKEN
    render_audit(result, console)
    if args.run_dir is not None and result.owners:
        write_text(args.run_dir / "audit.json", json.dumps(result.to_json(), indent=2) + "\n")
        plot = plot_privacy_budget(result.events, args.run_dir / "privacy_budget.png")
        console.print(f"wrote {args.run_dir / 'audit.json'} and {plot}")
    return result.exit_code


def _schema_infer(args: argparse.Namespace) -> int:
    import tomli_w

    from privacy.atomic import write_text
    from simulations.schema_draft import WARNING, draft_schema

    if args.out is not None and args.out.parent.exists() and not args.out.parent.is_dir():
        raise ConfigError(f"--out: {args.out} cannot be written ({args.out.parent} is a file)")
    try:
        schema = draft_schema(args.csv, args.target)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    text = tomli_w.dumps(schema.to_dict())
    print(WARNING.format(path=args.csv), file=sys.stderr)
    if args.out:
        write_text(args.out, text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text, end="")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from simulations.sweep import run_sweep

    eps = []
    for item in args.epsilons.split(","):
        try:
            value = math.inf if item.strip() == "inf" else float(item)
        except ValueError:
            raise ConfigError(f"--epsilons: {item!r} is not a number or inf") from None
        if not value > 0:
            raise ConfigError(f"--epsilons: {item!r} is not allowed; expected numbers > 0 or inf")
        eps.append(value)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.seeds < 1:
        raise ConfigError(f"--seeds={args.seeds} is not allowed; expected an integer >= 1")
    extra = []
    for flag in ("rounds", "num_clients"):
        if getattr(args, flag) is not None:
            extra += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    # Validate one cell up front so that a bad model or dataset fails in one line.
    for model in models:
        ExperimentConfig.from_mapping({"model": model, "dataset": args.dataset}, "flags").validate()
    frame = run_sweep(epsilons=eps, models=models, dataset=args.dataset, seeds=args.seeds,
                      out=args.out, extra=extra)
    print(f"wrote {args.out / 'sweep.csv'}, {args.out / 'tradeoff.png'}, {args.out / 'sweep.md'}")
    return 0 if len(frame) == len(eps) * len(models) * args.seeds else 1


def _evaluate(args: argparse.Namespace) -> int:
    from simulations.report import evaluate_into, print_summary, write_report

    where = args.run_dir / "config.toml"
    try:
        run_config = ExperimentConfig.parse(tomllib.loads(where.read_text()), str(where))
        where = args.run_dir / "report.json"
        report = json.loads(where.read_text())
    except FileNotFoundError as err:
        raise ConfigError(f"evaluate: {args.run_dir} is not a finished run ({err.filename} "
                          "is missing)") from None
    except (ValueError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"evaluate: {where} cannot be read ({err})") from None
    privacy = report.get("privacy") if isinstance(report, dict) else None
    if not isinstance(privacy, dict) or not {"dp", "max_epsilon"} <= privacy.keys() or \
            not isinstance(report.get("timings"), dict):
        raise ConfigError(f"evaluate: {args.run_dir / 'report.json'} is not a fedsynth report "
                          "(its privacy or timings section is missing)")
    evaluate_into(report, args.run_dir, run_config)
    write_report(args.run_dir, report)
    print_summary(report, args.run_dir)
    return 1 if args.strict and report["release_checks"]["flags"] else 0


def _certs(args: argparse.Namespace) -> int:
    from simulations.certs import DEFAULT_HOSTS, make_certificates

    if args.nodes < 0:
        raise ConfigError(f"--nodes={args.nodes} is not allowed; expected an integer >= 0")
    if args.out_dir.exists() and not args.out_dir.is_dir():
        raise ConfigError(f"certs: {args.out_dir} is a file; name a new directory")
    if args.out_dir.exists() and any(args.out_dir.iterdir()):
        raise ConfigError(f"certs: {args.out_dir} exists and is not empty; keys are never "
                          "overwritten")
    hosts = list(dict.fromkeys([*args.host, *DEFAULT_HOSTS]))
    for path in make_certificates(args.out_dir, hosts, args.nodes):
        print(path)
    print(f"server certificate valid for: {', '.join(hosts)}")
    return 0


def _keygen(args: argparse.Namespace) -> int:
    from privacy.signing import key_id, public_path, write_key_pair

    pub = public_path(args.key)
    for path in (args.key, pub):
        if path.exists():
            raise ConfigError(f"keygen: {path} exists; a signing key is never overwritten "
                              "(the owner's ledger is signed with it)")
    if not args.key.parent.is_dir():
        raise ConfigError(f"keygen: {args.key.parent} is not a directory")
    key = write_key_pair(args.key)
    print(f"{args.key} (private: keep it on this machine)")
    print(f"{pub} (public: give it to the coordinator and auditors) key_id "
          f"{key_id(key.public_key())}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command; return the exit code."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as done:  # --help (0) or a usage error already printed (2)
        return int(done.code or 0)
    if not getattr(args, "verbose", False):
        # Libraries' advice (flwr-datasets' partition sizes, scikit-learn's convergence,
        # torch's hooks) is for those who ask with --verbose; errors stay one line.
        warnings.simplefilter("ignore")
    try:
        if args.command == "simulate":
            return _simulate(args)
        if args.command == "audit":
            return _audit(args)
        if args.command == "certs":
            return _certs(args)
        if args.command == "keygen":
            return _keygen(args)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "schema":
            return _schema_infer(args)
    except ConfigError as err:
        print(f"fedsynth: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a path the user named, or a full disk: named, never a traceback
        where = f"{err.filename}: " if err.filename else ""
        print(f"fedsynth: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2 if err.errno in USER_PATH_ERRORS else 1
    return 2


# A path that cannot exist or be written as named: the user's to fix (exit 2). Anything
# else (a full disk, an I/O error) is exit 1: what was written stays, as written.
USER_PATH_ERRORS = (errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM,
                    errno.EROFS, errno.EEXIST)


if __name__ == "__main__":
    sys.exit(main())

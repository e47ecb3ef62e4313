"""The run's report: ``report.json`` for machines, ``report.md`` and a terminal table for people."""

from __future__ import annotations

import json
import math
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from rich.console import Console
from rich.table import Table

from privacy.atomic import write_text
from privacy.experiment import ExperimentConfig

RELATION = (
    "record-level: add or remove one record of one owner's data "
    "(each owner's guarantee covers its own records)"
)
CLIENT_RELATION = (
    "owner-level: add or remove one owner's entire contribution to the federation's "
    "releases (the global models and the synthetic data)"
)


def _noise_mode(config: ExperimentConfig) -> str:
    """Where the DP-SGD noise is added, and what the epsilon rests on (said next to it)."""
    if not config.distributed:
        return ("local: each owner adds the full noise to its own update (the epsilon "
                "holds against everyone, the coordinator included)")
    from privacy.distributed_noise import assumption, survivors

    least = survivors(config.num_clients, config.dropout_margin)
    return ("distributed: each owner adds a share of the noise and Flower's SecAgg+ reveals "
            "only the sum, one DP-SGD step a round; the epsilon "
            + assumption(least, config.colluders))


def fedsynth_version() -> str:
    """The installed distribution's version."""
    try:
        return version("fedsynth")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def build_report(config: ExperimentConfig, state, timings: dict) -> dict:
    """The machine-readable summary (DESIGN.md's schema); evaluation fills its last parts.

    Per owner: ``epsilon`` spent in this run (recomputable from ``ledger.jsonl``),
    ``lifetime_epsilon`` over every run the owner joined (its own ledger holds the
    events), and the owner's own lifetime budget, all as the owners' events state them.
    """
    private = config.private
    per_client = [
        {
            "client_id": o.client_id,
            "epsilon": o.epsilon if private else None,
            "lifetime_epsilon": o.lifetime_epsilon if private else None,
            "epsilon_budget": o.budget if private else None,
            "steps": o.steps,
            "rounds_trained": o.rounds,
            "exhausted": o.exhausted,
            "refusals": o.refusals,
        }
        for o in sorted(state.owners.values(), key=lambda o: o.client_id)
    ]
    client_level = None
    if config.client_dp != "none":
        client_level = {
            "mode": config.client_dp,
            "epsilon": state.client_level_epsilon,
            "delta": config.client_delta,
            "noise_multiplier": config.client_noise,
            "clip": config.client_clip,
            "fraction": config.fraction,
            "accountant": "rdp (Opacus; Poisson-subsampled Gaussian, fixed denominator)",
            "relation": CLIENT_RELATION,
            "trust": "the coordinator samples owners, clips and adds this noise: the "
                     "guarantee holds for the released model and synthetic data, not against "
                     "the coordinator, and not for the run directory, whose ledger and report "
                     "name the owners that took part each round",
        }
    budgets = [c["epsilon_budget"] for c in per_client if c["epsilon_budget"] is not None]
    return {
        "fedsynth_version": fedsynth_version(),
        "run_id": state.run_id,
        "model": config.model,
        "dataset": config.dataset,
        "num_clients": config.num_clients,
        "rounds_requested": config.rounds,
        "rounds_completed": state.rounds_completed,
        "released_model": state.released_model,
        "privacy": {
            "dp": private,
            "delta": config.delta if private else None,
            "epsilon_proposed": _finite_or_none(config.epsilon),
            "epsilon_budget": max(budgets) if budgets else None,
            "accountant": config.accountant if private else None,
            "sample_rate": config.sample_rate if private else None,
            "relation": RELATION if private else "none: trained without differential privacy",
            "max_epsilon": max((c["epsilon"] for c in per_client), default=0.0) if private
            else None,
            "max_lifetime_epsilon": max((c["lifetime_epsilon"] for c in per_client),
                                        default=0.0) if private else None,
            "per_client": per_client,
            "client_level": client_level,
            "ledger_head": state.ledger_head,
            "ledger_lines": state.ledger_lines,
            "noise": "DP noise and Poisson sampling drawn from OS entropy (unpredictable "
                     "from the configuration); seed governs public randomness only",
            "class_shares": _class_shares(config, state),
            "condition_counts": state.condition_counts,
            "noise_mode": _noise_mode(config) if private else None,
        },
        "utility": {},
        "fidelity": {},
        "attacks": {},
        "rejected_updates": state.rejected,
        "clipped_updates": state.clipped,
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }


def _class_shares(config: ExperimentConfig, state) -> dict:
    """How the release's classes were chosen, and from what."""
    if not config.releases_counts or state.class_shares is None:
        why = ("--balance" if config.balance else "owner-level DP: the counts carry "
               "record-level noise only" if not config.releases_counts
               else "no owner's class counts were accepted")
        return {"mode": "balanced", "shares": None, "why": why}
    conditions = config.conditions()
    noise = (f"Gaussian noise of std {conditions.counts_std(config.class_noise):.4g} on each "
             f"count (noise multiplier {config.class_noise:g}, sensitivity "
             f"√{conditions.count_blocks}), "
             "charged to each owner's ε" if config.private
             else "exact counts (no DP in this run)")
    return {"mode": "owners' counts", "shares": state.class_shares["shares"],
            "owners": state.class_shares["owners"], "noise": noise}


def render_markdown(report: dict, run_dir: Path) -> str:
    """A short human summary with links to the artifacts."""
    p, u = report["privacy"], report["utility"]
    flags = report.get("release_checks", {}).get("flags", [])
    lines = [
        f"# fedsynth run: {report['model']} on {report['dataset']}",
        "",
        *([f"> **WARNING: {flag}**" for flag in flags] + [""] if flags else []),
        f"- owners: {report['num_clients']}; rounds completed: {report['rounds_completed']}"
        f" of {report['rounds_requested']}",
    ]
    if p["dp"]:
        budgets = sorted({c["epsilon_budget"] for c in p["per_client"]
                          if c["epsilon_budget"] is not None})
        spread = ("none stated" if not budgets else f"{budgets[0]:g}" if len(budgets) == 1
                  else f"{budgets[0]:g} to {budgets[-1]:g}")
        lines += [
            f"- privacy: record-level DP-SGD per owner, δ = {p['delta']}, {p['accountant']} "
            f"accountant, Poisson rate q = {p['sample_rate']}; at most ε = "
            f"{p['epsilon_proposed']} proposed for this run; owners' own lifetime budgets: "
            f"{spread}",
            f"- largest ε spent in this run {p['max_epsilon']:.3f}; largest lifetime ε "
            f"{p['max_lifetime_epsilon']:.3f} (each owner's own ledger holds every run)",
            f"- neighbouring relation: {p['relation']}",
            f"- noise: {p['noise']}",
            f"- where the noise is added: {p['noise_mode']}",
        ]
    else:
        lines.append("- privacy: **none** (ε = ∞): the non-private baseline")
    if p["client_level"]:
        c = p["client_level"]
        eps = f"{c['epsilon']:.3f}" if c["epsilon"] is not None else "n/a (no release)"
        lines += [
            f"- owner-level DP ({c['mode']} clipping C = {c['clip']}, noise "
            f"{c['noise_multiplier']}, owners sampled at {c['fraction']}): "
            f"ε = {eps}, δ = {c['delta']}",
            f"- neighbouring relation: {c['relation']}; trust: {c['trust']}",
        ]
    shares = p.get("class_shares") or {"mode": "balanced", "why": "an older report"}
    if shares["mode"] == "balanced":
        lines.append(f"- release classes: balanced ({shares['why']})")
    else:
        lines.append("- release classes: " + ", ".join(f"{v:.3f}" for v in shares["shares"])
                     + f" (the sum of {len(shares['owners'])} owners' counts; "
                     f"{shares['noise']})")
    if "released_model" in report:
        lines.append(f"- released model: {report['released_model']}")
    conditioned = p.get("condition_counts")
    if conditioned:
        lines.append(f"- GAN training-by-sampling: fakes and the release are conditioned on "
                     f"the categorical columns' counts released with the class counts "
                     f"({len(conditioned['owners'])} owners)")
    if report.get("evaluation_error"):
        lines += ["", f"**The evaluation failed**: {report['evaluation_error']}. The release "
                  "is in synthetic/; `fedsynth evaluate RUN_DIR` repeats the evaluation."]
    else:
        lines += [
            "",
            "## Utility (classifiers tested on the holdout)",
            "",
            "| classifier | TSTR accuracy | TRTR accuracy | TSTR macro-F1 | TRTR macro-F1 |",
            "| --- | --- | --- | --- | --- |",
            *[
                f"| {name} | {c['tstr']['accuracy']:.3f} | {c['trtr']['accuracy']:.3f} | "
                f"{c['tstr']['macro_f1']:.3f} | {c['trtr']['macro_f1']:.3f} |"
                for name, c in u["classifiers"].items()
            ],
            "",
            *_fidelity_lines(report["fidelity"]),
            *_attack_lines(report["attacks"]),
        ]
    lines += [
        "## Privacy spent per owner",
        "",
        "| owner | steps | ε this run | lifetime ε | lifetime budget | exhausted | refusals |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in p["per_client"]:
        eps = f"{c['epsilon']:.3f}" if c["epsilon"] is not None else "∞"
        life = f"{c['lifetime_epsilon']:.3f}" if c["lifetime_epsilon"] is not None else "∞"
        budget = c["epsilon_budget"] if c["epsilon_budget"] is not None else "–"
        lines.append(
            f"| {c['client_id']} | {c['steps']} | {eps} | {life} | {budget} | "
            f"{'yes' if c['exhausted'] else 'no'} | {len(c['refusals'])} |"
        )
    refusals = [f"- owner {c['client_id']}, {r}" for c in p["per_client"] for r in c["refusals"]]
    if refusals:
        lines += ["", "Refusals (the owners' own reasons):", "", *refusals]
    if report["rejected_updates"]:
        lines += ["", "Left out by the coordinator (rejected replies, silent nodes):", "",
                  *[f"- {r}" for r in report["rejected_updates"]]]
    if report.get("clipped_updates"):
        lines += ["", "Clipped to what their DP steps can move (counted, scaled down):", "",
                  *[f"- {r}" for r in report["clipped_updates"]]]
    lines += [
        "",
        "## Artifacts",
        "",
        *(
            ["- [synthetic.csv](synthetic/synthetic.csv): released rows, in the schema's columns"]
            if "detection_auc" in report["fidelity"]
            else ["- [samples.png](synthetic/samples.png): synthetic samples, one row per class",
                  "- [synthetic.npz](synthetic/synthetic.npz): released data (`x`, `y`)"]
        ),
        "- [ledger.jsonl](ledger.jsonl): hash-chained privacy events; "
        "`fedsynth audit` recomputes every ε from it",
        "- [privacy_budget.png](privacy_budget.png): cumulative ε per owner per round",
        "- [config.toml](config.toml): the resolved configuration",
        "",
        *([] if "detection_auc" in report["fidelity"]
          else ["![samples](synthetic/samples.png)", ""]),
        "Timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in report["timings"].items()),
        "",
    ]
    return "\n".join(lines)


def _sdmetrics_lines(q: dict | None) -> list[str]:
    if not q:
        return []
    return ["", f"SDMetrics quality against the holdout ({q['library']}; 1 is the holdout "
                f"itself): **{q['quality']:.3f}** (column shapes {q['column_shapes']:.3f}, "
                f"column pair trends {q['column_pair_trends']:.3f})."]


def _fidelity_lines(f: dict) -> list[str]:
    if "detection_auc" in f:
        corr = f["correlation_difference"]
        return [
            "## Fidelity (against the holdout)",
            "",
            f"Detection ROC AUC (a random forest telling real from synthetic rows; 0.5 is "
            f"ideal): **{f['detection_auc']:.3f}**. Mean per-column distance: "
            f"{f['mean_marginal_distance']:.3f}"
            + (f"; mean absolute difference of numeric correlations: {corr:.3f}." if corr
               is not None else "."),
            f"Numeric bounds: {f['bounds_source']}.",
            *_sdmetrics_lines(f.get("sdmetrics")),
            "",
            "| column | metric | distance |",
            "| --- | --- | --- |",
            *[f"| {name} | {c['metric']} | {c['distance']:.3f} |"
              for name, c in f["columns"].items()],
            "",
        ]
    return [
        "## Fidelity",
        "",
        f"Fréchet distance to the holdout in the feature space of a {f['feature_network']}: "
        f"synthetic **{f['frechet_distance']:.2f}**, real training records "
        f"{f['frechet_distance_real_train']:.2f} (the floor). Per class: "
        + ", ".join(f"{k}: {v:.1f}" for k, v in f["frechet_distance_per_class"].items()),
        "",
    ]


def _attack_lines(a: dict) -> list[str]:
    summary = a["summary"]
    theory = summary["theoretical_epsilon"]
    lines = [
        "## Membership inference (members: training records; non-members: holdout)",
        "",
        "| attack | ROC AUC | TPR @ 1% FPR | TPR @ 0.1% FPR | empirical ε (95% lower bound) |",
        "| --- | --- | --- | --- | --- |",
    ]
    names = {"dcr": "distance to closest synthetic record", "model": "model",
             "canaries": "canaries: inserted vs held out"}
    for key, name in names.items():
        if key in a:
            r = a[key]
            name = f"{name} ({r['attack']})" if "attack" in r else name
            lines.append(f"| {name} | {r['auc']:.3f} | {r['tpr_at_fpr_1pct']:.3f} | "
                         f"{r['tpr_at_fpr_0.1pct']:.3f} | {r['empirical_epsilon']:.3f} |")
    lines += ["", f"Share of synthetic records closer to a training record than to a holdout "
              f"record: {a['dcr']['share_closer_to_training']:.3f} (0.5 is ideal).", ""]
    if theory is None:
        lines.append("No DP: there is no theoretical ε to compare with.")
    elif summary["exceeds_theory"]:
        lines.append(f"**WARNING: the empirical lower bound {summary['max_empirical_epsilon']:.3f}"
                     f" exceeds the theoretical ε {theory:.3f}. This is a bug to investigate.**")
    else:
        lines.append(f"The largest empirical lower bound, {summary['max_empirical_epsilon']:.3f}, "
                     f"stays below the theoretical ε {theory:.3f}, as it must.")
    return [*lines, "", *_anonymeter_lines(a.get("anonymeter"))]


ANONYMETER_ATTACKS = {
    "singling_out": "singling out (one-column predicates)",
    "linkability": "linkability (alternate columns as the two halves)",
    "inference": "inference (the target from the other columns)",
}


def _anonymeter_lines(r: dict | None) -> list[str]:
    if r is None:
        return []
    head = ["## Re-identification risks (Anonymeter)", ""]
    if not r["measured"]:
        return [*head, f"Not measured: {r['why']}.", ""]
    lines = [*head,
             f"{r['library']}, {r['attacks']} attacks each, through the release; risk is the "
             "attack's success on training rows beyond its success on the holdout (0: no more "
             "than for people outside the data; 1: every attack succeeds).", "",
             "| attack | risk | 95% CI | success on training rows | on the holdout | "
             "naive baseline |", "| --- | --- | --- | --- | --- | --- |"]
    for key, name in ANONYMETER_ATTACKS.items():
        x = r[key]
        if "error" in x:
            lines.append(f"| {name} | not measured: {x['error']} | | | | |")
            continue
        lines.append(f"| {name} | {x['risk']:.3f} | {x['ci'][0]:.3f} to {x['ci'][1]:.3f} | "
                     f"{x['attack_rate']:.3f} | {x['control_rate']:.3f} | "
                     f"{x['baseline_rate']:.3f} |")
    return [*lines, ""]


def print_summary(report: dict, run_dir: Path, console: Console | None = None) -> None:
    """The short table a user sees at the end of a run."""
    console = console or Console(highlight=False)
    p, u = report["privacy"], report["utility"]
    table = Table(title=f"fedsynth · {report['model']} on {report['dataset']}")
    table.add_column("what")
    table.add_column("value", justify="right")
    rounds = f"{report['rounds_completed']} / {report['rounds_requested']}"
    table.add_row("rounds completed", rounds)
    spent = [c["epsilon"] for c in p["per_client"]]
    if p["dp"]:
        if spent:
            table.add_row("ε per owner (min / max)", f"{min(spent):.3f} / {max(spent):.3f}")
        else:
            table.add_row("ε per owner", "nothing spent (no owner trained)")
        table.add_row("lifetime ε per owner (max)", f"{p['max_lifetime_epsilon']:.3f}")
        table.add_row("proposed ε this run, δ", f"{p['epsilon_proposed']}, {p['delta']:g}")
        table.add_row("owners exhausted", str(sum(c["exhausted"] for c in p["per_client"])))
        if (p.get("noise_mode") or "").startswith("distributed"):
            table.add_row("noise", "distributed: SecAgg+ sums (ε assumes enough honest "
                                   "owners in each; see report.md)")
    else:
        table.add_row("privacy", "none (ε = ∞)")
    if p["client_level"] and p["client_level"]["epsilon"] is not None:
        c = p["client_level"]
        table.add_row("owner-level (ε, δ)", f"({c['epsilon']:.3f}, {c['delta']:g})")
    if report.get("evaluation_error"):
        table.add_row("evaluation", "FAILED (see report.md)")
        table.add_row("run directory", str(run_dir))
        console.print(table)
        console.print(f"[bold red]evaluation failed[/]: {report['evaluation_error']}; the "
                      f"release is in {run_dir / 'synthetic'}; repeat with fedsynth evaluate "
                      f"{run_dir}")
        return
    table.add_row("TSTR accuracy (logistic)", f"{u['tstr_accuracy']:.3f}")
    table.add_row("TRTR accuracy (logistic)", f"{u['trtr_accuracy']:.3f}")
    quality = report["fidelity"].get("sdmetrics")
    if quality:
        table.add_row("SDMetrics quality", f"{quality['quality']:.3f}")
    attacks = report["attacks"]
    if "model" in attacks:
        table.add_row("attack AUC (model / DCR)",
                      f"{attacks['model']['auc']:.3f} / {attacks['dcr']['auc']:.3f}")
    risks = attacks.get("anonymeter") or {}
    if risks.get("measured"):
        table.add_row("Anonymeter single/link/infer", " / ".join(
            f"{risks[k]['risk']:.3f}" if "risk" in risks[k] else "–" for k in ANONYMETER_ATTACKS))
    flag = " (EXCEEDS THEORY: investigate)" if attacks["summary"]["exceeds_theory"] else ""
    table.add_row("empirical ε (lower bound)",
                  f"{attacks['summary']['max_empirical_epsilon']:.3f}{flag}")
    table.add_row("run directory", str(run_dir))
    console.print(table)
    for flag in report.get("release_checks", {}).get("flags", []):
        console.print(f"[bold red]WARNING[/]: {flag}")


def write_report(run_dir: Path, report: dict) -> None:
    """Write report.json and report.md atomically."""
    write_text(run_dir / "report.json", json.dumps(report, indent=2, allow_nan=False) + "\n")
    write_text(run_dir / "report.md", render_markdown(report, run_dir))


def evaluate_into(report: dict, run_dir: Path, config: ExperimentConfig) -> dict:
    """Fill the report's utility, fidelity and attacks sections from the run directory."""
    from simulations.evaluation import evaluate_release

    t0 = time.perf_counter()
    theory = report["privacy"]["max_epsilon"] if report["privacy"]["dp"] else None
    report.update(evaluate_release(run_dir, config, theory))
    report["timings"]["evaluation"] = round(time.perf_counter() - t0, 3)
    return report


def finish_run(run_dir: Path, config: ExperimentConfig, state, timings: dict) -> dict:
    """Evaluate the release, write report.json, report.md and the privacy plot, and show them."""
    report = build_report(config, state, timings)
    try:
        evaluate_into(report, run_dir, config)
        if (run_dir / "ledger.jsonl").exists():
            from privacy.ledger import read_ledger
            from simulations.privacy_plot import plot_privacy_budget

            plot_privacy_budget(read_ledger(run_dir / "ledger.jsonl"),
                                run_dir / "privacy_budget.png")
    except Exception as err:  # the owners' spend is in the ledger and the release on disk:
        # the report says what failed rather than the run dying without one
        report["evaluation_error"] = f"{type(err).__name__}: {str(err)[:300]}"
    write_report(run_dir, report)
    print_summary(report, run_dir)
    return report

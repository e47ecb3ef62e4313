"""``privacy_budget.png``: each owner's cumulative lifetime epsilon per round, budgets as lines."""

from __future__ import annotations

from pathlib import Path

from privacy.atomic import write_with
from privacy.ledger import is_spend


def plot_privacy_budget(entries: list[dict], path: Path) -> Path:
    """Draw each owner's (and the federation's) cumulative epsilon from ledger entries."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 4))
    budgets: set[float] = set()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    curves: dict[object, list[dict]] = {}
    for e in filter(is_spend, entries):
        curves.setdefault(e["client_id"], []).append(e)
    for i, (cid, events) in enumerate(sorted(curves.items(), key=lambda kv: (kv[0] is None,
                                                                             kv[0] or 0))):
        label = "owner-level (federation)" if cid is None else f"owner {cid}"
        ax.plot([e["round"] for e in events], [e["lifetime_epsilon"] for e in events],
                ":" if cid is None else "-", marker="o", markersize=3,
                color=colors[i % len(colors)], label=label)
        if events[-1].get("epsilon_budget") is not None:
            budgets.add(float(events[-1]["epsilon_budget"]))
    for budget in sorted(budgets):
        ax.axhline(budget, linestyle="--", linewidth=1, color="black", alpha=0.6)
        ax.annotate(f"budget ε = {budget:g}", (0, budget), xycoords=("axes fraction", "data"),
                    xytext=(4, 3), textcoords="offset points", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel("cumulative ε (lifetime)")
    ax.set_title("privacy spent per owner (from the ledger)")
    if len(curves) <= 24:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    write_with(path, lambda handle: fig.savefig(handle, format="png", dpi=110))
    plt.close(fig)
    return path

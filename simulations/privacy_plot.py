"""``privacy_budget.png``: cumulative epsilon per owner per round, each budget as a line."""

from __future__ import annotations

from pathlib import Path

from server.atomic import write_with


def plot_privacy_budget(owners, path: Path) -> Path:
    """Draw the owners' (and the federation's) epsilon curves from audited ledger events."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    budgets: set[float] = set()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, o in enumerate(owners):
        color = colors[i % len(colors)]
        rounds, eps = zip(*o.curve, strict=True) if o.curve else ((), ())
        label = f"owner {o.client_id}" if o.scope == "owner" else "owner-level (federation)"
        style = "-" if o.scope == "owner" else ":"
        ax.plot(rounds, eps, style, marker="o", markersize=3, color=color, label=label)
        if o.budget is not None:
            budgets.add(o.budget)
    for budget in sorted(budgets):
        ax.axhline(budget, linestyle="--", linewidth=1, color="black", alpha=0.6)
        ax.annotate(f"budget ε = {budget:g}", (0, budget), xycoords=("axes fraction", "data"),
                    xytext=(4, 3), textcoords="offset points", fontsize=8)
    ax.set_xlabel("round")
    ax.set_ylabel("cumulative ε")
    ax.set_title("privacy spent per owner (from the ledger)")
    if len(owners) <= 12:
        ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    write_with(path, lambda handle: fig.savefig(handle, format="png", dpi=110))
    plt.close(fig)
    return path

"""The audit as a person reads it: one table, reported beside recomputed beside the budget."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from simulations.audit import AuditResult


def render_audit(result: AuditResult, console: Console) -> None:
    """Print the chain status, the per-owner table and the findings."""
    console.print(f"ledger: {result.ledger} · {result.entries} events · chain intact · "
                  f"head {result.head[:12]}…", soft_wrap=True)
    if result.owners:
        methods = sorted({f"{o.accountant}→{o.recomputed_method}" for o in result.owners})
        table = Table(title=f"ε reported vs recomputed (dp-accounting; {', '.join(methods)})")
        for col in ("owner", "steps", "δ", "reported", "recomputed", "PLD", "budget", "verdict"):
            table.add_column(col, justify="left" if col in ("owner", "verdict") else "right")
        for o in result.owners:
            who = {"owner": str(o.client_id), "lifetime": f"{o.client_id} (lifetime)",
                   "federation": "federation"}[o.scope]
            ok = o.matches and o.within_budget
            verdict = "ok" if ok else ("over budget" if not o.within_budget else "MISMATCH")
            table.add_row(
                who, str(o.steps), f"{o.delta:g}", f"{o.reported:.4f}", f"{o.recomputed:.4f}",
                f"{o.pld:.4f}", "–" if o.budget is None else f"{o.budget:g}",
                f"[green]{verdict}[/]" if ok else f"[red]{verdict}[/]",
            )
        console.print(table)
    for finding in result.findings:
        console.print(f"finding: {finding}", soft_wrap=True, markup=False)
    verdicts = {0: "PASS", 1: "FAIL (see the findings above)"}
    console.print(f"audit: {verdicts.get(result.exit_code, 'FAIL')}")

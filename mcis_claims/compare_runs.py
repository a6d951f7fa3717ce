"""`mcis-claims compare RUN RUN [RUN ...]`: two or more runs side by side, cell by cell.

Each RUN is a report directory, its results.json or a baseline file. The first is the reference;
every other run is judged against it with the rule `--baseline` uses (baseline.compare): a
changed verdict is "changed", an effect outside the reference's interval "drift", a cell one side
lacks "new" or "missing". A row's status is the worst over the runs. Output: a rich table (a
terminal), Markdown (`--format md`) or JSON (`--format json`); exit 1 if any verdict changed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .baseline import BaselineFile, Expectation, compare, load_baseline, meta_warnings
from .errors import InputError, ReportError

SEVERITY = ("same", "new", "missing", "drift", "changed")  # a row's status: the worst over the runs


@dataclass
class Row:
    key: tuple
    cells: list  # one Expectation or None per run
    status: str
    messages: list  # one line per non-"same" comparison

    @property
    def effect_name(self) -> str:
        return next(c.effect_name for c in self.cells if c is not None)


def load_run(path: str, role: str) -> BaselineFile:
    """A run or baseline for `compare`, with errors worded for its side (never "create a baseline")."""
    target = Path(path).expanduser()
    if not target.exists():
        hint = (" (reports/latest points at the last run made without --report-dir)"
                if target.name == "latest" else "")
        raise ReportError(f"{role} {path} does not exist{hint}: pass a report directory, its results.json or a "
                          f"baseline file")
    return load_baseline(target)


def compare_runs(paths: list[str], *, only_common: bool = False) -> tuple[list[BaselineFile], list[Row]]:
    if len(paths) < 2:
        raise InputError("compare: give at least two runs (the first is the reference)")
    runs = [load_run(p, "reference" if i == 0 else "run") for i, p in enumerate(paths)]
    reference = runs[0]
    by_key: dict[tuple, Row] = {}
    for index, run in enumerate(runs[1:], start=1):
        records = [_as_record(e) for e in run.expectations.values()]
        for c in compare(records, reference):
            row = by_key.setdefault(c.key, Row(c.key, [None] * len(runs), "same", []))
            row.cells[0] = reference.expectations.get(c.key)
            row.cells[index] = c.new
            if SEVERITY.index(c.status) > SEVERITY.index(row.status):
                row.status = c.status
            if c.status != "same":  # with several runs, say which one
                row.messages.append(c.message if len(runs) == 2 else f"{paths[index]}: {c.message}")
    rows = list(by_key.values())
    if only_common:
        rows = [r for r in rows if all(cell is not None for cell in r.cells)]
    return runs, rows


def _as_record(e: Expectation) -> dict:
    return {"claim": e.claim, "model": e.model, "layer": e.layer, "verdict": e.verdict, "n": e.n,
            "effect": {"name": e.effect_name, "value": e.effect, "ci_low": e.ci_low, "ci_high": e.ci_high},
            "details": {"sae_weights_sha256": e.sae_weights_sha256} if e.sae_weights_sha256 else {}}


def _cell_text(e: Expectation | None) -> str:
    return "—" if e is None else f"{e.verdict} {e.effect_str().removeprefix(e.effect_name).strip()}"


def counts(rows: list[Row]) -> dict[str, int]:
    return {s: sum(r.status == s for r in rows) for s in reversed(SEVERITY)}


def render_markdown(paths: list[str], rows: list[Row]) -> str:
    head = "| claim | model | layer | effect | " + " | ".join(f"`{p}`" for p in paths) + " | status |"
    lines = [head, "|---|---|---:|---|" + "---|" * len(paths) + "---|"]
    for r in rows:
        claim, model, layer = r.key
        lines.append(f"| {claim} | {model} | {layer} | {r.effect_name} | "
                     + " | ".join(_cell_text(c).replace("|", "\\|") for c in r.cells) + f" | **{r.status}** |")
    lines += ["", " · ".join(f"{n} {s}" for s, n in counts(rows).items())]
    return "\n".join(lines) + "\n"


def render_json(paths: list[str], runs: list[BaselineFile], rows: list[Row]) -> str:
    return json.dumps({
        "runs": paths,
        "counts": counts(rows),
        "warnings": {p: meta_warnings(run.meta, runs[0]) for p, run in zip(paths[1:], runs[1:])},
        "rows": [{"claim": r.key[0], "model": r.key[1], "layer": r.key[2], "status": r.status,
                  "cells": [c.to_dict() if c is not None else None for c in r.cells], "messages": r.messages}
                 for r in rows],
    }, indent=2)


def render_rich(paths: list[str], runs: list[BaselineFile], rows: list[Row], console) -> None:
    from rich.table import Table
    from rich.text import Text

    from .records import RICH_STYLE

    style = {"changed": "bold red", "drift": "yellow", "new": "cyan", "missing": "dim", "same": "green"}
    title = f"{paths[0]} -> {paths[1]}" if len(paths) == 2 else f"reference {paths[0]} and {len(paths) - 1} runs"
    table = Table(title=title, header_style="bold", title_justify="left")
    table.add_column("claim", no_wrap=True)
    table.add_column("model", overflow="fold", min_width=12)
    table.add_column("layer", justify="right", no_wrap=True)
    table.add_column("effect", overflow="fold")
    labels = ["OLD", "NEW"] if len(paths) == 2 else [f"run {i}" for i in range(len(paths))]
    for label in labels:
        table.add_column(f"{label} verdict and [CI]", overflow="fold")
    table.add_column("status", no_wrap=True)
    for r in rows:
        claim, model, layer = r.key
        sides = [Text("—", style="dim") if c is None else
                 Text.assemble((c.verdict, RICH_STYLE.get(c.verdict, "")), _cell_text(c).removeprefix(c.verdict))
                 for c in r.cells]
        table.add_row(Text(claim), Text(model), Text(str(layer)), Text(r.effect_name, style="dim"), *sides,
                      Text(r.status, style=style[r.status]))
    table.caption = " · ".join(f"{n} {s}" for s, n in counts(rows).items())
    console.print(table)
    if len(paths) > 2:
        for i, p in enumerate(paths):
            console.print(Text(f"run {i}: {p}", style="dim"))
    for p, run in zip(paths[1:], runs[1:]):
        for warning in meta_warnings(run.meta, runs[0]):
            console.print(Text(f"warning ({p}): {warning}", style="yellow"))
    for r in rows:
        if r.status == "changed":
            for message in r.messages:
                console.print(Text(f"CHANGED {message}", style="bold red"))

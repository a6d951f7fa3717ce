"""Which claims a run selects, and the list of them: claim ids, their markers, --claims, --list-claims.

Each claim cell carries a marker named by its claim id (`-m C1`); `--claims C1,C2b` keeps exact ids;
`--list-claims` prints what -k/-m/--claims kept, sorted by number. Selection happens after the
family M is counted (plugin.py), so it never changes a verdict.
"""
from __future__ import annotations

import io
import re
import sys

import pytest


def claim_id(item) -> str | None:
    marker = item.get_closest_marker("claim")
    return marker.args[0].id if marker is not None and marker.args else None


def claim_sort_key(claim: str) -> tuple:
    """C2 < C4b < C10a < C12: by number, then suffix (a plain string sort puts C12 before C4b)."""
    match = re.fullmatch(r"([A-Za-z]*)(\d+)(.*)", claim)
    return (match.group(1), int(match.group(2)), match.group(3)) if match else (claim, 0, "")


def mark_claim_ids(config, items) -> None:
    """Each claim cell also carries a marker named by its id, so `-m C1` selects C1 alone.

    The id markers are registered here, once the catalogue is collected, so --strict-markers accepts them."""
    owners: dict[str, str] = {}
    for item in items:
        claim = claim_id(item)
        if claim is None:
            continue
        owner = f"{item.path.name}::{getattr(item, 'originalname', item.name)}"
        if owners.setdefault(claim, owner) != owner:  # two test functions claim one id: one verdict would hide the other
            raise pytest.UsageError(f"claim id {claim} is used by two tests ({owners[claim]} and {owner}); "
                                    f"give each claim its own id")
    ids = sorted(owners, key=claim_sort_key)
    for claim in ids:
        if claim.isidentifier():
            config.addinivalue_line("markers", f"{claim}: the cells of claim {claim} (select with -m {claim})")
    for item in items:
        claim = claim_id(item)
        if claim and claim.isidentifier():
            item.add_marker(claim)


def select_claims(config, items) -> None:
    """--claims C1,C2b: keep those claims' cells (exact ids, any case); an unknown id is one usage line."""
    wanted = config.getoption("claims", None)
    if not wanted:
        return
    known = {c.lower(): c for item in items if (c := claim_id(item))}
    asked = [w.strip() for w in str(wanted).split(",") if w.strip()]
    unknown = [w for w in asked if w.lower() not in known]
    if not asked or unknown:
        listed = ", ".join(sorted(known.values(), key=claim_sort_key))
        raise pytest.UsageError(f"--claims {wanted}: {'no id given' if not asked else 'no claim ' + ', '.join(unknown)} "
                                f"in the collected files; the ids are {listed}")
    keep = {known[w.lower()] for w in asked}
    selected = [item for item in items if claim_id(item) in keep]
    deselected = [item for item in items if claim_id(item) not in keep]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


def list_claims(config, items) -> None:
    from rich.console import Console
    from rich.table import Table

    specs = {}
    for item in items:
        marker = item.get_closest_marker("claim")
        if marker and marker.args:
            specs.setdefault(marker.args[0].id, (marker.args[0], item.path.name))
    table = Table(title=f"{len(specs)} claims", show_lines=True)
    for column, ratio in (("id", 1), ("claim (H1) and source", 5), ("H0 and statistic", 4), ("judged on", 2)):
        table.add_column(column, overflow="fold", ratio=ratio)
    for key in sorted(specs, key=claim_sort_key):
        spec, path = specs[key]
        table.add_row(
            spec.id,
            f"[bold]{spec.title}[/]\n{spec.statement}\n[dim]{spec.source} ({path})[/]",
            f"{spec.null_hypothesis}\n[dim]{spec.statistic}[/]",
            f"{spec.effect}\nSESOI {spec.sesoi:g}\nalpha {spec.alpha:g}\n{spec.kind}, {spec.alternative}",
        )
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    buffer = io.StringIO()
    Console(file=buffer, force_terminal=reporter.hasmarkup if reporter else False,
            width=max(120, reporter._tw.fullwidth if reporter else 120)).print(table)
    (reporter.write if reporter else sys.stdout.write)(buffer.getvalue())

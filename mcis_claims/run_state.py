"""A run's state, shared by the claim plugin (plugin.py) and the parallel one (parallel.py), and what
happens to a judged record: into the report, onto the item (verdict, junitxml properties), and a
failure if the claim is refuted (or, with --baseline, if its verdict changed).

Neither plugin module is imported here, so they import this one and not each other.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from .config import RunConfig
from .reproduce import invocation

if TYPE_CHECKING:
    from .cell import Workspace

STATE = pytest.StashKey["RunState"]()
VERDICT = pytest.StashKey[str]()


@dataclass
class RunState:
    config: RunConfig
    _workspace: Workspace | None = None  # built on first use (see `workspace`)
    started: float = field(default_factory=time.time)
    report: object = None
    n_cells: int = 0  # claim cells that run (after -k/-m)
    family: int = 0  # claim cells collected (before -k/-m), or the baseline's family
    usage_error: str | None = None
    directory: object = None  # the finalized report directory
    baseline: object = None  # BaselineReport, when --baseline was given
    baseline_error: str | None = None
    expectations: dict | None = None  # (claim, model, layer) -> Expectation, with --baseline
    # a run judged against a baseline is a subset of the baseline's grid: its multiplicity family
    baseline_family: int = 0
    records: list = field(default_factory=list)
    # for an honest report of a run that stops early: which claim cells were judged, and why others were not
    cell_ids: list = field(default_factory=list)  # node ids of the claim cells that were to run
    judged: set = field(default_factory=set)  # node ids that reached judge()
    finished: set = field(default_factory=set)  # node ids whose test protocol ran to its end (skips included)
    cell_errors: dict = field(default_factory=dict)  # node id -> one line, for cells that errored
    input_error: str | None = None  # the McisError that stopped the run (exit EXIT_INPUT_ERROR)

    @property
    def workspace(self) -> Workspace:
        """Built on first use: a session that collects no claim (the plugin is installed for every
        pytest run) never imports torch or touches a model."""
        if self._workspace is None:
            from .cell import Workspace

            self._workspace = Workspace(self.config)
        return self._workspace


def conclude(node, state: RunState, record) -> None:
    """A judged record's consequences: into the report, the item's verdict, a failure if refuted.

    Shared by `judge` and by a cell reused with --resume (parallel.py), which replays its record."""
    from .verdict import REFUTED

    if state.report is not None:
        state.report.add(record)
    state.records.append(record)
    state.judged.add(node.nodeid)
    node.user_properties.extend(junit_properties(record))  # before a refuted cell fails, below
    node.stash[VERDICT] = record.verdict
    where = f"{record.claim} {record.model} {record.site}"
    if state.expectations is None:  # judged on the data: a refuted claim fails
        if record.verdict in REFUTED:
            pytest.fail(f"{where} {record.verdict.upper()}: {record.reason}", pytrace=False)
        return
    # with --baseline, judged against the recorded verdict; a cell with no record is reported only
    expected = state.expectations.get((record.claim, record.model, record.layer))
    if expected is not None and not expected.matches(record.verdict):
        pytest.fail(f"{where}: verdict changed {expected.verdict} -> {record.verdict} "
                    f"(baseline {expected.effect_str()}; now {record.reason})", pytrace=False)
    node.stash[VERDICT] = record.verdict + ("" if expected is not None else ":new")


def junit_properties(record) -> list[tuple[str, object]]:
    """The cell's verdict, effect and test as (name, value) pairs for the item's `user_properties`.

    As `record_property` does: junitxml writes the item's properties into the test case's
    `<properties>` (an inconclusive cell is a pass there, but carries its verdict), and xdist
    carries them to the controller with each report. Names and values as in results.json."""
    effect = record.effect or {}
    decision = (record.details or {}).get("decision") or {}
    pairs = {
        "mcis_claim": record.claim, "mcis_model": record.model, "mcis_site": record.site,
        "mcis_verdict": record.verdict,
        "mcis_effect_name": effect.get("name"), "mcis_effect": effect.get("value"),
        "mcis_ci_low": effect.get("ci_low"), "mcis_ci_high": effect.get("ci_high"),
        "mcis_ci_level": effect.get("ci_level"),
        "mcis_p_value": record.p_value, "mcis_p_adjusted": record.p_adjusted, "mcis_n": record.n,
        "mcis_family": decision.get("family"),
    }
    return [(name, "" if value is None else value) for name, value in pairs.items()]


def run_meta(state: RunState, config) -> dict:
    """results.json's run header as the run starts: seed, config, versions, the command (quoted), family."""
    from .environment import environment

    return {
        "seed": state.config.seed,
        "config": state.config.to_meta(),
        "versions": environment(),
        "command": invocation(config.invocation_params.args),
        "family": state.family,
    }

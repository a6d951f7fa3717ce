"""Seed stability: rerun the claim grid over k seeds and count the cells that keep their verdict.

A verdict that flips when only the seed changes (which prompts are sampled, which
random directions are drawn, the bootstrap) is a verdict the data do not settle.

    mcis-claims stability --seeds 0,1,2 -- --layers 1 --models smollm2-135m

runs `pytest claims/ --seed S --report-dir OUT/seed-S ...` for each seed, then writes
OUT/stability.json and OUT/stability.md and prints the table.
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .errors import McisError
from .records import load_results


@dataclass(frozen=True)
class CellStability:
    claim: str
    model: str
    layer: int
    verdicts: dict[int, str]  # seed -> verdict
    effects: dict[int, float]

    @property
    def majority(self) -> str:
        return Counter(self.verdicts.values()).most_common(1)[0][0]

    @property
    def kept(self) -> bool:
        return len(set(self.verdicts.values())) == 1


def run_seeds(seeds: list[int], pytest_args: list[str], out: Path, claims_dir: str = "claims",
              resume: bool = False) -> dict[int, Path]:
    """Run the grid once per seed; return seed -> results.json. A refuted claim is not an error here.

    Any other exit (4: a usage error, EXIT_INPUT_ERROR: a bad corpus, SAE or model file, 2: an
    interrupt) stops the whole run at that seed with the child's own one-line error and exit code:
    every later seed would fail the same way.
    resume: keep a seed whose OUT/seed-S/results.json is there and complete (a long run, interrupted)."""
    results = {}
    for seed in seeds:
        report = out / f"seed-{seed}"
        if resume and (report / "results.json").is_file():
            try:
                load_results(report)  # refuses a report with "complete": false
            except McisError as exc:
                print(f"seed {seed}: running it again ({exc})", flush=True)
            else:
                print(f"seed {seed}: reusing {report / 'results.json'}", flush=True)
                results[seed] = report / "results.json"
                continue
        command = [sys.executable, "-m", "pytest", claims_dir, "--seed", str(seed), "--report-dir", str(report),
                   "-q", "-p", "no:cacheprovider", *pytest_args]
        print(f"$ {' '.join(command)}", flush=True)
        code, error = _run_echoing(command)
        if code not in (0, 1):  # 1 = some claim refuted: a result, not a failure to run
            raise StabilityStopped(f"seed {seed}: the claim run exited {code}"
                                   f"{': ' + error if error else '; see its output above'}", exit_code=code)
        results[seed] = report / "results.json"
    return results


class StabilityStopped(McisError):
    """A seed's run could not judge its grid; carries the run's exit code for `mcis-claims` to return."""

    def __init__(self, message: str, *, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def _run_echoing(command: list[str]) -> tuple[int, str | None]:
    """Run `command`, echoing its output as it comes; return its exit code and its one-line error
    (pytest's "ERROR: ..." usage line, or the plugin's "mcis-claims: input error ..." line), if any."""
    error = None
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", bufsize=1) as proc:
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            text = line.strip()
            if text.startswith(("ERROR: ", "mcis-claims: input error")):
                error = text.removeprefix("ERROR: ")
    return proc.returncode, error


def summarize(results: dict[int, Path]) -> list[CellStability]:
    cells: dict[tuple, CellStability] = {}
    for seed, path in results.items():
        for record in load_results(path)["records"]:
            key = (record["claim"], record["model"], record["layer"])
            cell = cells.setdefault(key, CellStability(*key, verdicts={}, effects={}))
            cell.verdicts[seed] = record["verdict"]
            cell.effects[seed] = record["effect"]["value"]
    return [cells[k] for k in sorted(cells, key=lambda k: (len(k[0]), k))]


def write_summary(cells: list[CellStability], out: Path) -> str:
    kept = sum(c.kept for c in cells)
    lines = [f"# Seed stability: {kept} of {len(cells)} cells keep their verdict", "",
             "| claim | model | layer | verdicts by seed | effects by seed | kept |", "|---|---|---:|---|---|---|"]
    for c in cells:
        verdicts = ", ".join(f"{s}: {v}" for s, v in sorted(c.verdicts.items()))
        effects = ", ".join(f"{v:.3g}" if v is not None else "NaN" for _, v in sorted(c.effects.items()))
        lines.append(f"| {c.claim} | {c.model} | {c.layer} | {verdicts} | {effects} | {'yes' if c.kept else 'NO'} |")
    text = "\n".join(lines) + "\n"
    (out / "stability.md").write_text(text)
    (out / "stability.json").write_text(json.dumps(
        {"kept": kept, "cells": len(cells),
         "records": [{"claim": c.claim, "model": c.model, "layer": c.layer, "verdicts": c.verdicts,
                      "effects": c.effects, "kept": c.kept, "majority": c.majority} for c in cells]},
        indent=2))
    return text

"""Combining shard reports (`mcis-claims merge`) and launching shards through submitit (`mcis-claims submit`).

A shard report is the report directory of `pytest ... --shard I/N`: its results.json has `run.shard`
= {index, count, family, grid, cells}. Every shard judged its cells at the whole grid's family M
(counted at collection, before -k/-m and before sharding), so merging re-judges nothing: it checks
that the shards are the N parts of one run (same seed, run config, library versions, family and
grid; each index once; every grid cell in exactly one shard) and writes one report from their
records, with their figures copied in. Each refusal is one line (a ReportError).

`submit` runs the shards as jobs of a `submitit.AutoExecutor` (Slurm when `srun` exists, its local
executor otherwise), waits for them, and merges. No scheduler of our own.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .errors import InputError, ReportError

# versions entries that may differ between the machines of one run without changing a number
MACHINE_KEYS = ("platform", "torch_threads")


def load_shard(path) -> tuple[Path, dict]:
    from .records import RESULTS, load_results

    directory = Path(path).expanduser()
    if directory.is_file():
        directory = directory.parent
    data = load_results(directory, allow_incomplete=True)
    shard = data["run"].get("shard")
    if not isinstance(shard, dict) or not {"index", "count", "grid", "cells"} <= set(shard):
        raise ReportError(f"{directory / RESULTS} is not a shard report (no run.shard); pass the report "
                          f"directories of `pytest ... --shard I/N` runs")
    return directory, data


def _differs(name: str, values: dict) -> None:
    """One line if the shards disagree on `name` (values: shard label -> value)."""
    distinct = list({repr(v): v for v in values.values()}.values())
    if len(distinct) > 1:
        first, *_ = values
        other = next(label for label, v in values.items() if v != values[first])
        show = (lambda v: v) if name != "config" else (lambda v: _config_diff(values[first], v))
        raise ReportError(f"the shards are not parts of one run: {name} differs ({first}: "
                          f"{_short(show(values[first]))}; {other}: {_short(show(values[other]))}); merge shards "
                          f"of one run only")


def _config_diff(reference: dict, value: dict) -> dict:
    return {k: value.get(k) for k in sorted(set(reference) | set(value)) if reference.get(k) != value.get(k)} or value


def _short(value) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= 120 else text[:117] + "..."


def merge(paths, out) -> Path:
    """Merge shard report directories into one report at `out`; returns the directory."""
    from .report import RunReport
    from .records import record_from_dict

    if not paths:
        raise InputError("merge: give the shard report directories, e.g. mcis-claims merge shard-1 shard-2")
    shards = [load_shard(p) for p in paths]
    by_index: dict[int, Path] = {}
    counts = {str(d): data["run"]["shard"]["count"] for d, data in shards}
    _differs("the shard count N", counts)
    count = next(iter(counts.values()))
    for directory, data in shards:
        index = data["run"]["shard"]["index"]
        if index in by_index:
            raise ReportError(f"shard {index}/{count} is given twice ({by_index[index]} and {directory}); "
                              f"pass each shard once")
        by_index[index] = directory
    missing = [i for i in range(1, count + 1) if i not in by_index]
    if missing:
        raise ReportError(f"shard {', '.join(f'{i}/{count}' for i in missing)} is missing: got "
                          f"{', '.join(f'{i}/{count}' for i in sorted(by_index))}; run it (pytest ... --shard "
                          f"{missing[0]}/{count}) and merge all {count}")
    labels = {str(d): data for d, data in shards}
    _differs("seed", {k: d["run"].get("seed") for k, d in labels.items()})
    _differs("config", {k: {c: v for c, v in (d["run"].get("config") or {}).items() if c != "report_dir"}
                        for k, d in labels.items()})
    _differs("versions", {k: {c: v for c, v in (d["run"].get("versions") or {}).items() if c not in MACHINE_KEYS}
                          for k, d in labels.items()})
    _differs("the family M", {k: d["run"]["shard"].get("family") for k, d in labels.items()})
    _differs("the grid (the cells after -k/-m)", {k: d["run"]["shard"]["grid"] for k, d in labels.items()})
    family = next(iter(labels.values()))["run"]["shard"]["family"]
    grid = set(next(iter(labels.values()))["run"]["shard"]["grid"])
    owner: dict[str, str] = {}
    for label, data in labels.items():
        for cell in data["run"]["shard"]["cells"]:
            if cell in owner:
                raise ReportError(f"cell {cell} is in two shards ({owner[cell]} and {label}): not parts of one run")
            owner[cell] = label
    if set(owner) != grid:
        lost = sorted(grid - set(owner))
        raise ReportError(f"{len(lost)} cell(s) of the grid are in no shard (e.g. {lost[0]}); the shards were "
                          f"cut from different collections")

    records, seen = [], {}
    for label, data in sorted(labels.items(), key=lambda kv: kv[1]["run"]["shard"]["index"]):
        for record in data["records"]:
            key = (record["claim"], record["model"], record["layer"])
            if key in seen:
                raise ReportError(f"{key[0]} {key[1]} layer {key[2]} is recorded by two shards ({seen[key]} and "
                                  f"{label})")
            seen[key] = label
            judged_at = ((record.get("details") or {}).get("decision") or {}).get("family")
            if judged_at is not None and judged_at != family:
                raise ReportError(f"{key[0]} {key[1]} layer {key[2]} in {label} was judged at family M={judged_at}, "
                                  f"not the grid's M={family}; rerun that shard")
            records.append((Path(label), record))

    out = Path(out).expanduser()
    first = labels[str(by_index[1])]["run"]
    run = {k: v for k, v in first.items() if k not in ("shard", "finished", "wall_time_s", "complete",
                                                        "not_judged", "stopped", "started")}
    run["started"] = min((d["run"].get("started") or "") for d in labels.values()) or None
    from .parallel import merge_provenance

    provenance = merge_provenance([{k: d["run"].get(k) for k in ("models", "corpus", "prompts", "sites", "parity")}
                                   for d in labels.values()])
    run.update({k: v for k, v in provenance.items() if v is not None})
    run["family"] = family
    run["merged_from"] = [{"index": d["run"]["shard"]["index"], "count": count, "directory": str(Path(label).resolve()),
                           "cells": len(d["run"]["shard"]["cells"]), "wall_time_s": d["run"].get("wall_time_s"),
                           "complete": d["run"].get("complete")}
                          for label, d in sorted(labels.items(), key=lambda kv: kv[1]["run"]["shard"]["index"])]
    report = RunReport(out, run_meta=run)
    report._create()
    for source, record in records:
        if record.get("figure"):
            origin, target = source / record["figure"], report.directory / record["figure"]
            if origin.is_file() and origin.resolve() != target.resolve():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(origin, target)
            elif not origin.is_file():
                record = {**record, "figure": None}
        report.add(record_from_dict(record))
    for label in labels:  # per-cell records and samples too: `--resume OUT` works on a merged report
        for cell in sorted([*(Path(label) / "cells").glob("*.json"), *(Path(label) / "samples").glob("*.parquet")]):
            target = report.directory / cell.parent.name / cell.name
            if cell.resolve() != target.resolve():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(cell, target)
    not_judged = [cell for d in labels.values() for cell in d["run"].get("not_judged") or []]
    stopped = "; ".join(f"shard {d['run']['shard']['index']}/{count}: {d['run']['stopped']}"
                        for d in labels.values() if d["run"].get("stopped")) or None
    if stopped is None and any(d["run"].get("complete") is False for d in labels.values()):
        stopped = "a shard did not reach its end"
    wall = max((d["run"].get("wall_time_s") or 0.0) for d in labels.values())
    return report.finalize(wall_time_s=wall, not_judged=not_judged, stopped=stopped)


# -- submit -----------------------------------------------------------------------------------------


def run_shard(index: int, count: int, pytest_args: list[str], report_dir: str, cwd: str) -> int:
    """One submitit job: `python -m pytest ARGS --shard I/N --report-dir DIR` in `cwd`; its exit code."""
    command = [sys.executable, "-m", "pytest", *pytest_args, "--shard", f"{index}/{count}", "--report-dir", report_dir]
    print(" ".join(command), flush=True)
    return subprocess.run(command, cwd=cwd).returncode


def submit(count: int, pytest_args: list[str], out, *, cluster: str | None = None, partition: str | None = None,
           gpus: int | None = None, timeout_min: int = 60, cpus: int | None = None, mem_gb: float | None = None,
           slurm_args: dict | None = None) -> tuple[Path, list[int]]:
    """Launch N shards through submitit, wait, merge into `out`; (merged directory, the shards' exit codes)."""
    import os

    import submitit

    if count < 1:
        raise InputError(f"--shards {count}: need at least 1")
    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    executor = submitit.AutoExecutor(folder=str(out / "submitit"), cluster=cluster)  # one log pair per job id
    params: dict = {"timeout_min": timeout_min, "name": "mcis-claims"}
    if cpus is not None:
        params["cpus_per_task"] = cpus
    if gpus is not None:
        params["gpus_per_node"] = gpus
    if mem_gb is not None:
        params["mem_gb"] = mem_gb
    if partition is not None:
        params["slurm_partition"] = partition
    for key, value in (slurm_args or {}).items():
        params[f"slurm_{key}"] = value
    executor.update_parameters(**params)
    dirs = [str(out / f"shard-{i}") for i in range(1, count + 1)]
    cwd = os.getcwd()
    jobs = [executor.submit(run_shard, i, count, list(pytest_args), dirs[i - 1], cwd) for i in range(1, count + 1)]
    print(f"submitted {count} shard(s) via {executor.cluster}: job(s) {', '.join(str(j.job_id) for j in jobs)}; "
          f"logs in {out / 'submitit'}", flush=True)
    codes = []
    for index, job in enumerate(jobs, start=1):
        try:
            codes.append(int(job.result()))
        except Exception as exc:  # the job itself failed (killed, timed out, lost): say which, with its log
            raise ReportError(f"shard {index}/{count} (job {job.job_id}) failed: "
                              f"{' '.join(str(exc).split())[:300]}; see {out / 'submitit'}") from None
    bad = [(i, c) for i, c in enumerate(codes, start=1) if c not in (0, 1)]
    if bad:
        index, code = bad[0]
        raise ReportError(f"shard {index}/{count} exited {code} (not 0 or 1: an error, not a verdict); see "
                          f"{out / 'submitit'} and rerun it with `pytest ... --shard {index}/{count}`")
    return merge(dirs, out), codes

"""Runs split over processes and machines: pytest-xdist, `--shard I/N`, `--resume DIR`, per-cell record files.

A second plugin object beside plugin.py (registered by it), so that the claim plugin itself stays
"hooks plus one registered object" and the distribution logic lives here.

- **xdist** (`pytest claims/ -n 2`): the controller plans the report directory before the workers
  start and hands it to them (`workerinput`). Each claim cell carries an `xdist_group` mark for its
  model, and `-n` without `--dist` runs `--dist loadgroup`, so a model's cells go to one worker,
  which loads the model once. A worker draws each cell's figure into the shared directory and sends
  the cell's record (results.json form) to the controller in its call report's `user_properties`;
  the controller rebuilds the records, writes results.json as they arrive and the report once at
  the end. Workers write no results.json, summary or HTML. The family M is counted by each worker
  on the whole collected grid before -k/-m, exactly as the serial run does.
- **--shard I/N** runs a deterministic 1/N of the cells after -k/-m: cells are grouped by (model,
  layer) (a depth claim by model), groups are dealt largest first to the least-loaded shard. M is
  still the whole grid's (counted before -k and before sharding). results.json gets `run.shard`
  {index, count, family, grid, cells}; `mcis-claims merge` (shards.py) combines the shards.
- **cells/**: every judged cell is also written to `<report dir>/cells/<claim>_<model>_L<layer>.json`
  (atomically, as it finishes) with its key: claim id, model name and fingerprint, layer(s), seed,
  the run config's sha256 and the family M. `--resume DIR` reuses a cell of DIR whose key matches
  instead of running it (the model is loaded, the claim function is not called), copies its
  figure, and runs every other cell; the report equals an uninterrupted run's apart from timing.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .reproduce import GROUP_PREFIX, plain_nodeid

CELLS = "cells"  # per-cell record files, in the report directory
RECORD_PROPERTY = "mcis_record"  # a call report's user property: one record as JSON (worker -> controller)
WORKER_OUTPUT = "mcis_claims"  # config.workeroutput key: what a worker tells the controller at its end


@dataclass
class Parallel:
    role: str = "serial"  # "serial" | "controller" (xdist) | "worker" (xdist)
    shard: tuple[int, int] | None = None
    shard_info: dict | None = None
    worker_dir: str | None = None  # the controller's report directory, as the workers write to it
    latest_base: Path | None = None  # reports/, where `latest` points at the run (no --report-dir)
    resume: dict = field(default_factory=dict)  # key sha256 -> (record dict, source report directory)
    resume_dir: Path | None = None
    reused: int = 0
    workers: list = field(default_factory=list)  # what each worker sent at its end
    crashed: list = field(default_factory=list)


PARALLEL = pytest.StashKey[Parallel]()
NEW_RECORDS = pytest.StashKey[list]()


def parse_shard(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise pytest.UsageError(f"--shard {text}: expected I/N, the I-th of N parts (1 <= I <= N), e.g. --shard 1/3")
    index, count = int(match[1]), int(match[2])
    if count < 1 or not 1 <= index <= count:
        raise pytest.UsageError(f"--shard {text}: I must be between 1 and N (got I={index}, N={count}); "
                                f"e.g. --shard 1/{max(count, 1)}")
    return index, count


def pytest_addoption(parser):
    group = parser.getgroup("mcis-claims")
    group.addoption("--shard", default=None, metavar="I/N",
                    help="run the I-th of N deterministic parts of the grid (cells grouped by model and layer) and "
                         "write a shard report; combine shard reports with `mcis-claims merge`")
    group.addoption("--resume", default=None, metavar="DIR",
                    help="reuse the cells already judged in the report directory DIR (its cells/*.json) whose claim, "
                         "model fingerprint, layer, seed and config match; run the others")
    group.addoption("--log-samples", action="store_true", default=False,
                    help="also write each cell's per-unit read-outs (paired values as bounds, censoring, document, "
                         "prompt text, per-base curves) to <report dir>/samples/*.parquet; "
                         "read them with mcis_claims.load_results(DIR)")


def _state(config):
    from .run_state import STATE

    return config.stash.get(STATE, None)


@pytest.hookimpl(trylast=True)  # after plugin.py made the run state
def pytest_configure(config):
    state = _state(config)
    if state is None:
        return
    opt = config.option
    par = Parallel()
    if getattr(opt, "shard", None) is not None:
        par.shard = parse_shard(opt.shard)
    if hasattr(config, "workerinput"):
        par.role = "worker"
        par.worker_dir = config.workerinput.get("mcis_report_dir")
    elif getattr(opt, "dist", "no") != "no" and getattr(opt, "tx", None):
        par.role = "controller"
        explicit = any(a in ("--dist", "-d") or a.startswith("--dist=") for a in config.invocation_params.args)
        if opt.dist == "load" and not explicit:  # -n N alone: keep each model's cells on one worker
            opt.dist = "loadgroup"
        config.pluginmanager.register(Controller(config), "mcis-claims-controller")
    if getattr(opt, "resume", None):
        par.resume_dir, par.resume = load_resume(opt.resume)
    config.stash[PARALLEL] = par


def load_resume(path: str) -> tuple[Path, dict]:
    directory = Path(path).expanduser()
    if directory.suffix.lower() == ".json":
        directory = directory.parent
    cells = directory / CELLS
    if not cells.is_dir():
        raise pytest.UsageError(f"--resume {path}: no {CELLS}/ folder of per-cell records there; pass the report "
                                f"directory of an earlier run (e.g. reports/latest)")
    index = {}
    for file in sorted(cells.glob("*.json")):
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
            index[key_hash(data["key"])] = (data["record"], directory.resolve())
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a half-written or foreign file: that cell runs again
    return directory.resolve(), index


# -- collection ---------------------------------------------------------------------------------


def cell_param(item):
    """('cell', (model, layer)) | ('grid', (model, layers)) | (None, None) for an item of the claim grid."""
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    for name in ("cell", "grid"):
        if params.get(name) is not None:
            return name, params[name]
    return None, None


def group_key(item) -> tuple[str, str]:
    kind, value = cell_param(item)
    if kind == "cell":
        return value[0], f"{int(value[1]):04d}"
    if kind == "grid":
        return value[0], "grid"
    return "~", ""  # a test outside the model x layer grid (toys, a skipped placeholder): one group


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(session, config, items):
    """First: an xdist_group per model (before xdist's own hook appends it to the node id). Last,
    once -k/-m chose the cells: --shard keeps its part."""
    if _state(config) is None:
        return (yield)
    for item in items:
        kind, value = cell_param(item)
        if kind is not None and item.get_closest_marker("claim"):
            model = re.sub(r"[^A-Za-z0-9._-]+", "-", str(value[0]))
            item.add_marker(pytest.mark.xdist_group(GROUP_PREFIX + model))
    result = yield
    par = config.stash.get(PARALLEL, None)
    if par is not None and par.shard is not None and items:
        _select_shard(config, items)
    return result


def _select_shard(config, items) -> None:
    state, par = _state(config), config.stash[PARALLEL]
    index, count = par.shard
    groups: dict[tuple, list] = {}
    for item in items:
        groups.setdefault(group_key(item), []).append(item)
    if count > len(groups):
        raise pytest.UsageError(f"--shard {index}/{count}: the grid has only {len(groups)} (model, layer) group(s) "
                                f"to share out; use N <= {len(groups)}")
    load, owner = [0] * count, {}
    for key in sorted(groups, key=lambda k: (-len(groups[k]), k)):
        shard = min(range(count), key=lambda j: (load[j], j))
        owner[key] = shard
        load[shard] += len(groups[key])
    kept = [item for item in items if owner[group_key(item)] == index - 1]
    dropped = [item for item in items if owner[group_key(item)] != index - 1]
    claim_ids = [plain_nodeid(item.nodeid) for item in items if item.get_closest_marker("claim")]
    par.shard_info = {"index": index, "count": count, "family": state.family, "grid": sorted(claim_ids),
                      "cells": sorted(plain_nodeid(item.nodeid) for item in kept if item.get_closest_marker("claim"))}
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.hookimpl(trylast=True)  # after plugin.py opened the report
def pytest_collection_finish(session):
    config = session.config
    par = config.stash.get(PARALLEL, None)
    state = _state(config)
    if par is None or state is None or state.report is None:
        return
    if par.role == "worker":  # figures only; the controller writes results.json and the report
        if par.worker_dir is not None:
            state.report = WorkerReport(par.worker_dir, run_meta={})
    if par.shard_info is not None:
        state.report.update_meta(shard=par.shard_info)


# -- running ------------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    state, par = _state(item.config), item.config.stash.get(PARALLEL, None)
    before = len(state.records) if state is not None else 0
    try:
        return (yield)
    finally:
        if state is not None and par is not None and len(state.records) > before:
            new = state.records[before:]
            item.stash[NEW_RECORDS] = new
            for record in new:
                _write_cell_file(state, item, record)
                if item.config.getoption("log_samples", False) and record.sample is not None:
                    _write_samples(state, item, record)


def _write_samples(state, item, record) -> None:
    from .samples import write_samples

    funcargs = getattr(item, "funcargs", {})
    cell = funcargs.get("cell") or (funcargs["grid"].late if funcargs.get("grid") is not None else None)
    try:
        write_samples(state.report.directory, record, cell)
    except (OSError, ImportError, ValueError) as exc:
        import warnings

        warnings.warn(f"mcis-claims: could not write the samples of {record.claim} {record.model} {record.site} "
                      f"({type(exc).__name__}: {exc})", stacklevel=2)


def _write_cell_file(state, item, record) -> None:
    """<report dir>/cells/<claim>_<model>_L<layer>.json: the record and the key --resume matches on."""
    from .cache import atomic_write
    from .records import _jsonable, _sanitize

    key = cell_key(state, item)
    if key is None or state.report is None:
        return
    directory = Path(state.report.directory) / CELLS
    try:
        directory.mkdir(parents=True, exist_ok=True)
        name = f"{_sanitize(record.claim)}_{_sanitize(record.model)}_L{record.layer}.json"
        text = json.dumps(_jsonable({"key": key, "record": record.to_dict()}), indent=1, allow_nan=False)
        atomic_write(directory / name, text.encode())
    except OSError as exc:
        import warnings

        warnings.warn(f"mcis-claims: could not write the cell record of {record.claim} {record.model} "
                      f"{record.site} ({exc}); --resume will run it again", stacklevel=2)


def cell_key(state, item) -> dict | None:
    """What a reused cell must share with this one: claim, model fingerprint, layer(s), seed, config, family."""
    kind, value = cell_param(item)
    marker = item.get_closest_marker("claim")
    if kind is None or marker is None or not marker.args:
        return None
    name = value[0]
    layers = [int(value[1])] if kind == "cell" else [int(layer) for layer in value[1]]
    config = {k: v for k, v in state.config.to_meta().items() if k != "report_dir"}
    return {"claim": marker.args[0].id, "model": name, "fingerprint": state.workspace.model(name).fingerprint,
            "layers": layers, "seed": state.config.seed, "config_sha256": _sha(config), "family": state.family or 1}


def key_hash(key: dict) -> str:
    return _sha(key)


def _sha(obj) -> str:
    from .records import _jsonable

    return hashlib.sha256(json.dumps(_jsonable(obj), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """--resume: a cell whose key matches a finished one of DIR is not run again; its record is replayed."""
    par = pyfuncitem.config.stash.get(PARALLEL, None)
    state = _state(pyfuncitem.config)
    if par is None or state is None or not par.resume or not pyfuncitem.get_closest_marker("claim"):
        return None
    key = cell_key(state, pyfuncitem)
    found = par.resume.get(key_hash(key)) if key is not None else None
    if found is None:
        return None
    from .run_state import conclude
    from .records import record_from_dict

    data, source = found
    record = record_from_dict(data)
    if state.report is not None and record.figure:
        state.report._create()
        target = Path(state.report.directory) / record.figure
        origin = source / record.figure
        if origin.is_file() and origin.resolve() != target.resolve():
            with contextlib.suppress(OSError):
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(origin, target)
        if not target.is_file():
            record.figure = None
        from .records import _sanitize
        from .samples import SAMPLES

        name = f"{_sanitize(record.claim)}_{_sanitize(record.model)}_L{record.layer}.parquet"
        origin, target = source / SAMPLES / name, Path(state.report.directory) / SAMPLES / name
        if origin.is_file() and origin.resolve() != target.resolve():
            with contextlib.suppress(OSError):
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(origin, target)
    par.reused += 1
    conclude(pyfuncitem, state, record)
    return True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    par = item.config.stash.get(PARALLEL, None)
    if par is not None and par.role == "worker" and call.when == "call":
        for record in item.stash.get(NEW_RECORDS, []):
            report.user_properties.append((RECORD_PROPERTY, json.dumps(record.to_dict(), allow_nan=False)))
    return report


# -- xdist: controller and workers ----------------------------------------------------------------


def _worker_report_class():
    from .report import RunReport

    class _WorkerReport(RunReport):
        """A worker's view of the controller's report directory: it draws figures, writes no results.json."""

        def _write_json(self, *, warn: bool) -> None:
            return None

    return _WorkerReport


def WorkerReport(directory, *, run_meta):  # noqa: N802 - a class built on first use (report.py is heavy)
    return _worker_report_class()(directory, run_meta=run_meta)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    """The controller plans the report directory before the workers start: they draw figures into it.

    Nothing is created here (a session that judges nothing leaves no folder); the report itself
    is opened at the first record that arrives."""
    config = session.config
    par, state = config.stash.get(PARALLEL, None), _state(config)
    if par is None or state is None or par.role != "controller" or config.option.collectonly:
        return
    from .errors import McisError
    from .report import _plan_directory

    try:
        directory, _, par.latest_base = _plan_directory(state.config.report_dir)
    except McisError as exc:
        raise pytest.UsageError(str(exc)) from None
    par.worker_dir = str(directory.absolute())


def _controller_report(config, par, state):
    """The controller's RunReport, in the directory the workers were given (no -2 suffix when they made it)."""
    from .run_state import run_meta
    from .report import RunReport

    class _ControllerReport(RunReport):
        def _create(self) -> None:
            base, self._latest_base = self._latest_base, None  # the folder may exist: a worker made it
            try:
                super()._create()
            finally:
                self._latest_base = base  # reports/latest still moves to it at the end

    report_dir = state.config.report_dir if state.config.report_dir is not None else par.worker_dir
    report = _ControllerReport(report_dir, run_meta=run_meta(state, config))
    if state.config.report_dir is None:
        report._latest_base = par.latest_base
    return report


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    par = node.config.stash.get(PARALLEL, None)
    if par is not None and par.worker_dir is not None:
        node.workerinput["mcis_report_dir"] = par.worker_dir


class Controller:
    """Registered on the xdist controller only: a worker's judged cell arrives in its call report."""

    def __init__(self, config):
        self.config = config

    def pytest_runtest_logreport(self, report):
        if report.when != "call" or not report.user_properties:
            return
        state = _state(self.config)
        par = self.config.stash.get(PARALLEL, None)
        if state is None or par is None or par.worker_dir is None:
            return
        from .records import record_from_dict

        for name, value in report.user_properties:
            if name == RECORD_PROPERTY:
                record = record_from_dict(json.loads(value))
                if state.report is None:  # the family each worker counted, before the workers' end
                    state.family = state.family or ((record.details.get("decision") or {}).get("family") or 0)
                    state.report = _controller_report(self.config, par, state)
                state.report.add(record)
                state.records.append(record)
                state.judged.add(plain_nodeid(report.nodeid))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    config = node.config
    par, state = config.stash.get(PARALLEL, None), _state(config)
    if par is None or state is None:
        return
    output = getattr(node, "workeroutput", None) or {}
    if error:
        par.crashed.append(f"xdist worker {getattr(node, 'gateway', None) and node.gateway.id} went down: "
                           f"{str(error).strip().splitlines()[0] if str(error).strip() else 'crashed'}")
    if WORKER_OUTPUT in output:
        par.workers.append(json.loads(output[WORKER_OUTPUT]))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    config = session.config
    par, state = config.stash.get(PARALLEL, None), _state(config)
    if par is None or state is None:
        return
    if par.role == "worker":
        from .records import _jsonable

        config.workeroutput[WORKER_OUTPUT] = json.dumps(_jsonable({
            "family": state.family, "cell_ids": [plain_nodeid(i) for i in state.cell_ids],
            "judged": [plain_nodeid(i) for i in state.judged], "finished": [plain_nodeid(i) for i in state.finished],
            "cell_errors": {plain_nodeid(k): v for k, v in state.cell_errors.items()},
            "input_error": state.input_error,
            "provenance": state._workspace.provenance() if state._workspace is not None else {},
            "shard": par.shard_info,
        }), allow_nan=False)
        return
    if par.role != "controller":
        return
    for worker in par.workers:  # the grid, the family and the provenance, from the workers that saw them
        state.cell_ids += [i for i in worker["cell_ids"] if i not in state.cell_ids]
        state.judged |= set(worker["judged"])
        state.finished |= set(worker["finished"])
        state.cell_errors.update(worker["cell_errors"])
        state.family = state.family or worker["family"]
        if worker["input_error"] and state.input_error is None:
            state.input_error = worker["input_error"]
    if par.crashed and not (session.shouldstop or session.shouldfail):
        session.shouldstop = "; ".join(par.crashed)
    if state.report is None:
        return
    if not state.records:
        return
    merged = merge_provenance([w["provenance"] for w in par.workers])
    merged["family"] = state.family
    shards = [w["shard"] for w in par.workers if w.get("shard")]
    if shards:
        merged["shard"] = shards[0]
    state._workspace = _Provenance(merged)  # the controller loaded no model: the workers' provenance


class _Provenance:
    """Stands in for the controller's Workspace (never built there: no torch import) at the report's end."""

    def __init__(self, merged: dict):
        self.merged = merged

    def provenance(self) -> dict:
        return self.merged


def merge_provenance(parts: list[dict]) -> dict:
    """The union of several processes' provenance (models, corpus, prompts, sites, parity)."""
    out: dict = {}
    for part in parts:
        for key, value in (part or {}).items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = {**out[key], **value}
            elif value is not None or key not in out:
                out[key] = value if not isinstance(value, dict) else dict(value)
    return out


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    par = config.stash.get(PARALLEL, None)
    if par is not None and par.resume_dir is not None and par.role != "worker":
        terminalreporter.write_line(f"mcis-claims: --resume reused {par.reused} finished cell(s) of {par.resume_dir}"
                                    + ("" if par.role == "serial" else " (counted on the workers)"))

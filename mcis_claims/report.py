"""Reports: results.json, summary.md, report.html and one figure per cell.

A run's report directory (default `reports/<ISO timestamp>/`, with `reports/latest`
pointing at the newest) holds:

    results.json   schema_version, run metadata, one record per (claim, model, layer), results_hash
    summary.md     provenance header, the verdict table, each cell's reason and figure link
    report.html    the same, self-contained: figures inlined as base64 data URIs, no scripts
    figures/       <claim>_<model>_L<layer>.png: read-out against radius per direction kind;
                   forest.png: every cell's effect with its CI, grouped by claim, coloured by verdict

The directory is checked for writability before any work is done, and created with the
first record (a run that judges nothing leaves no folder); `reports/latest` moves to it
when the run ends. Each record's figure and results.json are written as soon as the record
arrives, every file through a temporary file and a rename, so a crash later in the run
loses nothing already computed, and a failed write keeps the records in memory for the
next attempt. results.json says `"complete": false` until the run ends with every cell
judged; a run that stopped early lists the cells it did not judge (`not_judged`), and
`load_results` refuses it for comparisons.

`results_hash` is the sha256 of the records' canonical JSON (sorted keys, records in
(claim, model, layer) order, timing and figure paths left out): the same seed gives the
same hash, whatever the run order, directory or speed.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import json
import math
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import InputError, ReportError

if TYPE_CHECKING:  # rich and matplotlib load on first use: `import mcis_claims` stays light
    from rich.console import Console
    from rich.table import Table

SCHEMA_VERSION = 1
VERDICTS = ("supported", "negligible", "reversed", "inconclusive")
LEGACY_VERDICTS = ("refuted",)  # the old rule's word for negligible-or-reversed: old reports still load
RICH_STYLE = {"supported": "bold green", "negligible": "bold red", "reversed": "bold magenta",
              "refuted": "bold red", "inconclusive": "bold yellow"}
UNHASHED = ("timing_s", "costs_s", "figure")  # vary between identical runs
RESULTS, SUMMARY, HTML_REPORT, FIGURES = "results.json", "summary.md", "report.html", "figures"
FOREST = f"{FIGURES}/forest.png"  # every cell's effect and CI; cell figures are <claim>_<model>_L<layer>.png



@dataclass
class CurveSet:
    """Per-prompt sweep curves of one direction kind, for plotting."""

    kind: str  # e.g. "isotropic", "cov_random_mixture", "real_mixture", "gaussian_base"
    radii: np.ndarray  # (S,) in units of the site's median activation norm
    values: np.ndarray  # (n, S) e.g. KL in nats per base prompt (already aggregated over repeat directions)
    label: str | None = None

    def __post_init__(self):
        self.radii = np.asarray(self.radii, dtype=np.float64)
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.values.ndim == 1:
            self.values = self.values[None, :]  # one curve -> (1, S)
        if self.radii.ndim != 1 or self.values.ndim != 2 or self.values.shape[1] != self.radii.shape[0]:
            raise InputError(f"CurveSet {self.kind!r}: values {self.values.shape} must be (n, S) "
                             f"with S = len(radii) = {self.radii.shape}")

    @property
    def name(self) -> str:
        return self.label or self.kind

    def summary(self) -> dict:
        """Median and interquartile band over prompts at each radius (NaN-aware)."""
        with warnings.catch_warnings():  # an all-NaN column gives NaN, written as null
            warnings.simplefilter("ignore", RuntimeWarning)
            q25, median, q75 = np.nanpercentile(self.values, [25, 50, 75], axis=0)
        return {"kind": self.kind, "n": int(self.values.shape[0]), "radii": self.radii,
                "median": median, "q25": q25, "q75": q75}


@dataclass
class CellRecord:
    """One (claim, model, layer) cell of a run."""

    claim: str  # "C1"
    model: str  # "smollm2-135m"
    layer: int
    site: str  # "blocks.1.hook_resid_pre"
    n: int
    statistic: dict  # {"name": str, "value": float}
    effect: dict  # {"name", "value", "ci_low", "ci_high", "ci_level"}
    p_value: float  # raw
    p_adjusted: float | None  # multiplicity-adjusted (None until the run's end)
    verdict: str  # "supported" | "negligible" | "reversed" | "inconclusive" (verdict.VERDICTS)
    reason: str  # one line, with numbers
    spec: dict  # claim metadata (id, title, statement, ..., sesoi, alpha, alternative)
    details: dict  # extra JSON-able numbers
    timing_s: float
    curves: list[CurveSet] = field(default_factory=list)  # figure only; results.json gets a summary
    curve_ylabel: str = "KL(clean || perturbed) [nats]"
    figure: str | None = None  # path of the PNG relative to the report directory
    curve_xlabel: str | None = None  # default: radius / median norm
    reference_lines: dict = field(default_factory=dict)  # label -> y value drawn as a dotted line
    curve_yscale: str | None = None  # "log" | "linear"; default: log for non-negative read-outs
    costs_s: dict = field(default_factory=dict)  # named parts of the cell's time (kept out of the results hash)
    plot: object = None  # callable(record, path) for a claim's own figure (C11, C13); default figures.plot_curves
    # a record rebuilt from results.json (xdist worker, shard, resumed cell) has no curves, only their summary
    frozen_curve_summary: dict | None = None
    sample: object = None  # the estimate's stats.PairedSample (per-unit bounds), for --log-samples; not in JSON
    unit_figure: str | None = None  # the per-unit values' PNG (the tested quantity), relative to the report

    def __post_init__(self):
        if self.verdict not in VERDICTS + LEGACY_VERDICTS:
            raise InputError(f"verdict {self.verdict!r}: must be one of {', '.join(VERDICTS)}")
        self.layer = int(self.layer)
        self.curves = list(self.curves)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.claim, self.model, self.layer)

    def curve_summary(self) -> dict:
        if self.frozen_curve_summary is not None:
            return self.frozen_curve_summary
        out = {}
        for curve in self.curves:
            name = curve.name
            while name in out:  # two curve sets with one name keep both
                name += "'"
            out[name] = curve.summary()
        return out

    def to_dict(self) -> dict:
        """The results.json record: JSON-safe, NaN/inf as null."""
        return _jsonable({
            "claim": self.claim, "model": self.model, "layer": self.layer, "site": self.site, "n": self.n,
            "statistic": self.statistic, "effect": self.effect,
            "p_value": self.p_value, "p_adjusted": self.p_adjusted,
            "verdict": self.verdict, "reason": self.reason,
            "sesoi": self.spec.get("sesoi"), "alpha": self.spec.get("alpha"),
            "spec": self.spec, "details": self.details,
            "curve_ylabel": self.curve_ylabel, "curve_summary": self.curve_summary(),
            "figure": self.figure, "unit_figure": self.unit_figure, "timing_s": self.timing_s,
            "costs_s": self.costs_s,
        })


def record_from_dict(data: dict) -> CellRecord:
    """A CellRecord whose to_dict() gives back `data` (a results.json record): no curves, its figure kept.

    How records travel between processes (xdist workers, shards, resumed runs): as JSON, the
    figure already drawn into the report directory by the process that judged the cell."""
    spec = dict(data.get("spec") or {})
    for key in ("sesoi", "alpha"):  # to_dict reads these from the spec
        if key in data and spec.get(key) != data[key]:
            spec[key] = data[key]
    return CellRecord(
        claim=data["claim"], model=data["model"], layer=data["layer"], site=data.get("site", ""), n=data.get("n"),
        statistic=data.get("statistic") or {}, effect=data.get("effect") or {}, p_value=data.get("p_value"),
        p_adjusted=data.get("p_adjusted"), verdict=data["verdict"], reason=data.get("reason", ""), spec=spec,
        details=data.get("details") or {}, timing_s=data.get("timing_s"),
        curve_ylabel=data.get("curve_ylabel", "KL(clean || perturbed) [nats]"), figure=data.get("figure"),
        unit_figure=data.get("unit_figure"),
        costs_s=data.get("costs_s") or {}, frozen_curve_summary=data.get("curve_summary") or {})


class RunReport:
    """The report directory of one run; records arrive one by one, each written at once."""

    def __init__(self, report_dir: Path | str | None, *, run_meta: dict):
        # Checked writable now, created at the first record: a run that judges nothing
        # (a usage error, an interrupt during collection) leaves no empty folder behind.
        self._directory, self._results_path, self._latest_base = _plan_directory(report_dir)
        self._created = False
        self._run = dict(run_meta)
        self._run.setdefault("started", _now_iso())
        self._run.setdefault("finished", None)
        self._run["complete"] = False  # until finalize says every cell was judged: a killed run stays false
        self._records: dict[tuple[str, str, int], CellRecord] = {}
        self._figure_names: dict[str, tuple[str, str, int]] = {}

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def results_path(self) -> Path:
        return self._results_path

    @property
    def incomplete(self) -> bool:
        """True until finalize() records a run that judged every cell of its grid."""
        return self._run.get("complete") is False

    def update_meta(self, **meta) -> None:
        """Add run metadata (e.g. `shard`, `family`) that results.json carries from its next write on."""
        self._run.update(meta)

    def records(self) -> list[CellRecord]:
        """Records in (claim, model, layer) order, C2 before C10."""
        return [self._records[key] for key in sorted(self._records, key=_record_order)]

    def add(self, record: CellRecord) -> None:
        """Keep `record` (a later one for the same cell replaces it), draw its figure, rewrite results.json."""
        if not isinstance(record, CellRecord):
            raise InputError(f"RunReport.add takes a CellRecord, got {type(record).__name__}")
        self._create()
        self._records[record.key] = record
        self._draw(record)
        self._write_json(warn=True)

    def set_adjusted(self, key: tuple[str, str, int], p_adjusted: float, verdict: str, reason: str) -> None:
        """Record the multiplicity-adjusted p and the verdict it implies for the cell `key`."""
        claim, model, layer = key
        record = self._records.get((claim, model, int(layer)))
        if record is None:
            known = ", ".join(map(str, sorted(self._records, key=_record_order))) or "none"
            raise KeyError(f"no record for {key!r}; recorded cells: {known}")
        if verdict not in VERDICTS:
            raise InputError(f"verdict {verdict!r}: must be one of {', '.join(VERDICTS)}")
        record.p_adjusted, record.verdict, record.reason = p_adjusted, verdict, reason
        self._draw(record)  # the figure shows the verdict, p_adj and the reason
        self._write_json(warn=True)

    def finalize(self, *, wall_time_s: float, extra_meta: dict | None = None, not_judged: list | None = None,
                 stopped: str | None = None) -> Path:
        """Write results.json, summary.md and report.html; return the directory. Safe to call twice.

        not_judged  [{"cell": node id, "why": one line}] for the grid's cells with no verdict
                    (the run stopped first, or the cell errored); any makes the report
                    `"complete": false`, which `load_results` (and so a baseline) refuses.
        stopped     why the run ended early, e.g. "interrupted (Ctrl-C)", or None.
        `reports/latest` moves to this directory here, at the end of the run.
        """
        self._create()
        for key, value in (extra_meta or {}).items():
            old = self._run.get(key)
            self._run[key] = {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value
        self._run["wall_time_s"] = wall_time_s
        self._run["finished"] = _now_iso()
        self._run["not_judged"] = list(not_judged or [])
        self._run["stopped"] = stopped
        self._run["complete"] = not not_judged and stopped is None
        for record in self.records():
            if record.curves and record.figure is None:  # its first attempt failed: retry
                self._draw(record)
        self._write_json(warn=False)
        data = self._document()
        forest = self._draw_forest(data["records"])
        depth = self._draw_depth(data["records"])
        from .report_html import render_html

        try:
            _atomic_write(self._directory / SUMMARY, render_summary(data, forest=forest).encode())
            _atomic_write(self._directory / HTML_REPORT,
                          render_html(data, self._directory, forest=forest, depth=depth).encode())
        except OSError as exc:
            raise _unwritable(self._directory, exc) from None
        if self._latest_base is not None:
            _point_latest(self._latest_base, self._directory)
        return self._directory

    # -- internals --------------------------------------------------------------------------

    def _create(self) -> None:
        """Make the directory on first use; a timestamped name another run took since moves to -2, -3, ..."""
        if self._created:
            return
        directory = self._directory
        if self._latest_base is not None:
            stem, suffix = directory.name, 1
            while True:
                try:
                    directory.mkdir(parents=True)
                    break
                except FileExistsError:
                    suffix += 1
                    directory = directory.with_name(f"{stem}-{suffix}")
                except OSError as exc:
                    raise _unwritable(directory, exc) from None
            self._results_path = directory / RESULTS
        try:
            (directory / FIGURES).mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=directory) as probe:
                probe.write(b"ok")
            if self._results_path.is_dir():
                raise IsADirectoryError(21, f"{self._results_path.name} is a directory")
        except OSError as exc:
            raise _unwritable(directory, exc) from None
        self._directory, self._results_path = directory.resolve(), self._results_path.resolve()
        self._created = True

    def _document(self) -> dict:
        records = [record.to_dict() for record in self.records()]
        return {"schema_version": SCHEMA_VERSION, "run": _jsonable(self._run), "records": records,
                "results_hash": results_hash(records)}

    def _write_json(self, *, warn: bool) -> None:
        data = json.dumps(self._document(), indent=2, allow_nan=False) + "\n"
        try:
            _atomic_write(self._results_path, data.encode())
        except OSError as exc:
            if not warn:
                raise _unwritable(self._directory, exc) from None
            # Never lose a computed verdict to a full disk: keep it, say so, retry at the next write.
            warnings.warn(f"mcis-claims: could not write {self._results_path} ({_reason(exc)}); "
                          "results are kept in memory and written again at the end of the run", stacklevel=3)

    def _draw(self, record: CellRecord) -> None:
        if record.sample is not None and record.unit_figure is None:
            self._draw_units(record)
        if not record.curves and record.plot is None:
            return
        name = self._figure_name(record)
        try:
            from .figures import plot_curves

            (record.plot or plot_curves)(record, self._directory / FIGURES / name)
        except Exception as exc:  # a figure is a nicety: a plotting failure must not lose the verdict
            warnings.warn(f"mcis-claims: no figure for {record.claim} {record.model} {record.site}: "
                          f"{type(exc).__name__}: {exc}", stacklevel=3)
            return
        record.figure = f"{FIGURES}/{name}"

    def _draw_units(self, record: CellRecord) -> None:
        name = self._figure_name(record).replace(".png", "_units.png")
        try:
            from .figures import plot_units

            plot_units(record, self._directory / FIGURES / name)
        except Exception as exc:  # a nicety, as the curves
            warnings.warn(f"mcis-claims: no per-unit figure for {record.claim} {record.model} {record.site}: "
                          f"{type(exc).__name__}: {exc}", stacklevel=3)
            return
        record.unit_figure = f"{FIGURES}/{name}"

    def _draw_depth(self, records: list[dict]) -> dict[str, str]:
        """figures/depth_<claim>.png for each claim with two or more layers on a model: {claim: path}."""
        by_claim: dict[str, list[dict]] = {}
        for r in records:
            by_claim.setdefault(r["claim"], []).append(r)
        drawn = {}
        for claim, rows in by_claim.items():
            relative = f"{FIGURES}/depth_{_sanitize(claim)}.png"
            try:
                from .figures import plot_depth

                if plot_depth(claim, rows, self._directory / relative):
                    drawn[claim] = relative
            except Exception as exc:
                warnings.warn(f"mcis-claims: no depth figure for {claim}: {type(exc).__name__}: {exc}", stacklevel=3)
        return drawn

    def _draw_forest(self, records: list[dict]) -> str | None:
        """figures/forest.png over every cell; its relative path, or None if there is nothing to draw."""
        if not records:
            return None
        try:
            from .figures import plot_forest

            plot_forest(records, self._directory / FOREST)
        except Exception as exc:  # a nicety, as each cell's figure: never lose the report to it
            warnings.warn(f"mcis-claims: no forest figure: {type(exc).__name__}: {exc}", stacklevel=3)
            return None
        return FOREST

    def _figure_name(self, record: CellRecord) -> str:
        stem = f"{_sanitize(record.claim)}_{_sanitize(record.model)}_L{record.layer}"
        owner = self._figure_names.setdefault(stem, record.key)
        if owner != record.key:  # two models that sanitise alike ("a/b", "a-b") keep separate files
            stem += "_" + hashlib.sha256(repr(record.key).encode()).hexdigest()[:8]
            self._figure_names[stem] = record.key
        return stem + ".png"


def render_verdict_table(records: list[CellRecord], console: Console | None = None) -> Table:
    """A rich table of verdicts, one row per record; printed to `console` if one is given."""
    from rich.table import Table
    from rich.text import Text

    table = Table(show_lines=False, header_style="bold")
    for name, justify in (("claim", "left"), ("model", "left"), ("layer", "right"), ("n", "right"),
                          ("effect [CI]", "left"), ("p", "right"), ("p_adj", "right"), ("censored a/b", "right"),
                          ("verdict", "left")):
        # Short columns never wrap; a long model path folds rather than vanishing into "…".
        table.add_column(name, justify=justify, overflow="fold", no_wrap=name not in ("model", "effect [CI]"))
    ordered = sorted(records, key=lambda r: _record_order(r.key))
    for r in ordered:
        effect = Text.assemble((f"{r.effect.get('name', '')} ", "dim"), _effect_str(r.effect))
        # Text cells, not markup: a model path may contain "[" and must print as is.
        table.add_row(Text(r.claim), Text(r.model), Text(str(r.layer)), Text(str(r.n)), effect,
                      Text(_fmt_p(r.p_value)), Text(_fmt_p(r.p_adjusted)), Text(_censored_str(r.details)),
                      Text(r.verdict, style=RICH_STYLE.get(r.verdict, "")))
    counts = {v: sum(r.verdict == v for r in ordered) for v in VERDICTS}
    table.caption = (" · ".join(f"{n} {v}" for v, n in counts.items())
                     + f" (negligible + reversed = refuted; M = {_family(ordered)})")
    if console is not None:
        console.print(table)
    return table


def load_results(path, *, allow_incomplete: bool = False) -> dict:
    """Read a results.json (or the report directory holding one) and check its schema.

    A report of a run that stopped early (`"complete": false`) is refused unless
    allow_incomplete: judging against it would count the cells it lacks as "missing"."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"results file {path} does not exist; pass a results.json written by a run") from None
    except OSError as exc:
        raise ReportError(f"cannot read results file {path}: {_reason(exc)}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path} is not valid JSON ({' '.join(str(exc).split())}); "
                          "re-run to regenerate it") from None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        found = data.get("schema_version") if isinstance(data, dict) else type(data).__name__
        raise ReportError(f"{path}: schema_version {found!r} is not {SCHEMA_VERSION}, the version this "
                          "mcis-claims reads; re-run to regenerate it")
    missing = [k for k in ("run", "records", "results_hash") if k not in data]
    if missing or not isinstance(data["records"], list):
        raise ReportError(f"{path}: missing {', '.join(missing) or 'a records list'}; not a results.json?")
    for i, record in enumerate(data["records"]):
        required = ("claim", "model", "layer", "effect", "p_value", "verdict")
        lacking = [k for k in required if k not in record] if isinstance(record, dict) else ["everything"]
        if lacking:
            raise ReportError(f"{path}: record {i} lacks {', '.join(lacking)}; re-run to regenerate it")
    run = data["run"] if isinstance(data["run"], dict) else {}
    if run.get("complete") is False and not allow_incomplete:  # reports before "complete" existed pass
        missing = len(run.get("not_judged") or [])
        why = run.get("stopped") or (f"{missing} cell(s) not judged" if missing else "it did not finish")
        raise ReportError(f"{path} is an incomplete run ({why}; \"complete\": false); "
                          "re-run it to the end before comparing or reusing it")
    return data


def results_hash(records: list[dict]) -> str:
    """sha256 of the canonical JSON of `records` (to_dict() form), without timing and figure paths."""
    kept = [{k: v for k, v in r.items() if k not in UNHASHED} for r in records]
    kept.sort(key=lambda r: _record_order((r.get("claim", ""), r.get("model", ""), r.get("layer", 0))))
    text = json.dumps(_jsonable(kept), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def render_summary(data: dict, *, forest: str | None = None) -> str:
    """summary.md from a results.json document; `forest` is the forest figure's relative path, if drawn."""
    run, records = data["run"], data["records"]
    config = run.get("config") or {}
    lines = ["# mcis-claims report", ""]
    seed_line = f"- **seed** {run.get('seed')}"
    if config.get("profile"):
        comparable = "" if config.get("comparable", True) else " — **not comparable** (smoke profile)"
        seed_line += f" · **profile** {config['profile']}{comparable}"
    lines.append(seed_line)
    if run.get("complete") is False:
        lines.append(f"- **INCOMPLETE** (`\"complete\": false`): {incomplete_line(run)}")
    if run.get("command"):
        lines.append(f"- **command** `{run['command']}`")
    for name, meta in (run.get("models") or {}).items():
        lines.append(f"- **model** {name}{_provenance(meta if isinstance(meta, dict) else {})}")
    corpus = run.get("corpus")
    if isinstance(corpus, dict):
        lines.append(f"- **corpus** {corpus.get('name', '?')}{_provenance(corpus)}")
    parity = run.get("parity") or {}
    if parity:
        lines.append("- **parity** engine vs one bridge forward per row: " + _parity_str(parity))
    versions = run.get("versions") or {}
    if versions:
        lines.append("- **versions** " + ", ".join(f"{k} {v}" for k, v in versions.items() if v is not None))
    wall = run.get("wall_time_s")
    lines.append(f"- **wall time** {_fmt_seconds(wall)} · started {run.get('started')}"
                 f" · finished {run.get('finished')}")
    lines.append(f"- **results_hash** `{data.get('results_hash')}`")
    lines += ["", "| claim | model | layer | n | effect [CI] | p | p_adj | censored a/b | verdict |",
              "|---|---|---:|---:|---|---:|---:|---:|---|"]
    for r in records:
        cells = [r["claim"], r["model"], r["layer"], r.get("n"),
                 f"{r['effect'].get('name', '')} {_effect_str(r['effect'])}",
                 _fmt_p(r.get("p_value")), _fmt_p(r.get("p_adjusted")), _censored_str(r.get("details")),
                 f"**{r['verdict']}**"]
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    counts = {v: sum(r["verdict"] == v for r in records) for v in VERDICTS}
    lines += ["", " · ".join(f"{n} {v}" for v, n in counts.items()), ""]
    lines += render_models_matrix(records)
    if forest:
        lines += [f"![effect sizes with {_ci_level(records[0]['effect'])}, every cell]({forest})", ""]
    for r in records:
        lines += [f"## {r['claim']} {r['model']} {r.get('site', '')} — {r['verdict']}", ""]
        title = (r.get("spec") or {}).get("title")
        if title:
            lines += [f"*{title}*", ""]
        lines.append(f"{r.get('reason', '')}")
        details = r.get("details") or {}
        if details.get("reproduce"):
            lines += ["", f"Reproduce: `{details['reproduce']}`"]
        if r.get("figure"):
            lines += ["", f"![{r['claim']} {r['model']} L{r['layer']}]({r['figure']})"]
        lines.append("")
    return "\n".join(lines)


# -- helpers ----------------------------------------------------------------------------------


def _plan_directory(report_dir) -> tuple[Path, Path, Path | None]:
    """(directory, results.json path, reports/ base for `latest` or None), checked writable, nothing created.

    Writable means: the directory, or its nearest existing ancestor, is a folder we may
    write into, and results.json is not itself a folder. A failure is one ReportError line.
    """
    latest_base = None
    if report_dir is None:
        latest_base = Path.cwd() / "reports"
        run_id = _now_iso(sep="")
        directory, suffix = latest_base / run_id, 1
        while directory.exists():  # two runs in one second
            suffix += 1
            directory = latest_base / f"{run_id}-{suffix}"
        results = directory / RESULTS
    else:
        given = Path(report_dir).expanduser()
        if given.suffix.lower() == ".json":  # --report-dir x.json writes exactly there (LE#2927)
            directory, results = given.parent, given
        else:
            directory, results = given, given / RESULTS
    existing = directory.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "Not a directory", str(existing))
        if not os.access(existing, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied", str(existing))
        if results.is_dir():
            raise IsADirectoryError(21, f"{results.name} is a directory")
    except OSError as exc:
        raise _unwritable(directory, exc) from None
    return directory, results, latest_base


def _point_latest(base: Path, target: Path) -> None:
    """reports/latest -> the newest run: a relative symlink, or a text file where links fail."""
    link, tmp = base / "latest", base / f".latest.{os.getpid()}.tmp"
    try:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(target.name, tmp)
        os.replace(tmp, link)  # atomic; replaces an older link or text file
        return
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
    try:
        _atomic_write(link, f"{target}\n".encode())
    except OSError as exc:
        warnings.warn(f"mcis-claims: could not update {link} ({_reason(exc)})", stacklevel=3)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; reports are meant to be shared
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # only still there if something failed


def _unwritable(directory: Path, exc: OSError) -> ReportError:
    return ReportError(f"cannot write report directory {directory}: {_reason(exc)}; "
                       "pass --report-dir to a writable path")


def _reason(exc: OSError) -> str:
    text = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename and exc.strerror:
        text += f" ({exc.filename})"
    return " ".join(text.split())  # one line


def _jsonable(obj):
    """Plain JSON types: numpy scalars and arrays to Python, NaN and inf to None, paths to str."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
        return [_jsonable(v) for v in items]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy arrays, torch tensors
        return _jsonable(obj.tolist())
    if hasattr(obj, "to_dict"):
        return _jsonable(obj.to_dict())
    return repr(obj)


def _record_order(key) -> tuple:
    claim, model, layer = key
    return (_natural(str(claim)), str(model), int(layer))


def _natural(text: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def _sanitize(name: str, limit: int = 60) -> str:
    """A file-name-safe, bounded version of a model or claim name (LE#2993: 'File name too long')."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "x"
    if len(clean) > limit:
        clean = clean[-limit:].lstrip("-.") + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return clean


def _now_iso(sep: str = ":") -> str:
    """UTC ISO time; sep="" gives the run id, 2026-11-25T051203Z (no colons: Windows, URLs)."""
    return datetime.now(timezone.utc).strftime(f"%Y-%m-%dT%H{sep}%M{sep}%SZ")


def _finite(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and math.isfinite(x)


def _fmt(x, digits: int = 3) -> str:
    return f"{x:.{digits}g}" if _finite(x) else "—"


def _fmt_p(p) -> str:
    return "—" if not _finite(p) else f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def _fmt_seconds(s) -> str:
    return "—" if not _finite(s) else f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def _ci_level(effect: dict) -> str:
    level = effect.get("ci_level")
    if not _finite(level):
        return "CI"
    return f"{level * 100 if level <= 1 else level:g}% CI"


def _censored_str(details) -> str:
    """'3%/0%': the censored fraction of each arm the verdict saw ('' for records without one)."""
    decision = (details or {}).get("decision") or {}
    censored = decision.get("censored_fraction") or {}
    return "/".join(f"{100 * float(v):.0f}%" for v in censored.values() if v is not None)


def _family(records) -> str:
    families = {((getattr(r, "details", None) or {}).get("decision") or {}).get("family") for r in records}
    families.discard(None)
    return ", ".join(map(str, sorted(families))) or "?"


def _effect_str(effect: dict) -> str:
    return f"{_fmt(effect.get('value'))} [{_fmt(effect.get('ci_low'))}, {_fmt(effect.get('ci_high'))}]"


def _parity_str(parity: dict) -> str:
    """'3 of 3 sites ok; max |dKL| 5.7e-06 nats, max residual error 2.3e-05 of the radius' (failing sites named)."""
    checks = {site: c for site, c in parity.items() if isinstance(c, dict)}
    failed = [site for site, c in checks.items() if not c.get("ok")]
    worst_kl = max((c.get("kl_max_abs_err", 0.0) for c in checks.values()), default=0.0)
    worst_resid = max((c.get("resid_l2_max_rel_err", 0.0) for c in checks.values()), default=0.0)
    status = f"{len(checks) - len(failed)} of {len(checks)} sites ok" + (f" (FAILED: {', '.join(failed)})" if failed else "")
    return f"{status}; max |dKL| {worst_kl:.2g} nats, max residual error {worst_resid:.2g} of the radius or the change"


def incomplete_line(run: dict) -> str:
    """'stopped: interrupted; 3 cell(s) not judged: id (why), ...' for a run that did not finish its grid."""
    cells = [c for c in run.get("not_judged") or [] if isinstance(c, dict)]
    parts = [f"stopped: {run['stopped']}"] if run.get("stopped") else []
    if run.get("finished") is None:
        parts.append("the run did not reach its end (killed, or still running)")
    if cells:
        parts.append(f"{len(cells)} cell(s) not judged: " + "; ".join(f"{c.get('cell')} ({c.get('why')})" for c in cells))
    return "; ".join(parts) or "not every cell was judged"


def _provenance(meta: dict) -> str:
    """' (sha256 `…`, source …, device …)' from whichever hash, source and device keys a meta dict has."""
    parts = [f"{k} `{v}`" for k, v in meta.items() if "sha256" in k and v]
    if meta.get("source"):
        parts.append(f"source `{meta['source']}`")
    if meta.get("device"):
        parts.append(f"device {meta['device']}")
    return f" ({', '.join(parts)})" if parts else ""


def _md_cell(value) -> str:
    return str(value if value is not None else "—").replace("|", "\\|").replace("\n", " ")


def models_matrix(records) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Claims x models: (model names, [(claim and layer, one "verdict effect [CI]" per model)]).

    One row per (claim, layer) so that models with different depths line up by the grid's layer
    (the summary lists the layers per model). Empty unless the run has two or more models.
    """
    models = list(dict.fromkeys(r["model"] for r in records))
    if len(models) < 2:
        return models, []
    cells: dict[tuple, dict] = {}
    for r in records:
        cells.setdefault((r["claim"], r["layer"]), {})[r["model"]] = f"{r['verdict']} {_effect_str(r['effect'])}"
    rows = [(f"{claim} L{layer}" if isinstance(layer, int) and layer >= 0 else str(claim),  # toys have no layer
             [cells[claim, layer].get(m, "—") for m in models])
            for claim, layer in sorted(cells, key=lambda k: (_natural(str(k[0])), k[1]))]
    return models, rows


def render_models_matrix(records) -> list[str]:
    """The claims x models matrix as Markdown lines (nothing for a one-model run)."""
    models, rows = models_matrix(records)
    if not rows:
        return []
    lines = ["## Claims × models", "", "| claim | " + " | ".join(models) + " |",
             "|---|" + "---|" * len(models)]
    lines += ["| " + " | ".join(_md_cell(c) for c in (label, *cells)) + " |" for label, cells in rows]
    return lines + [""]

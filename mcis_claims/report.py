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

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InputError, ReportError
from .records import (
    SCHEMA_VERSION, VERDICTS, RICH_STYLE, RESULTS, SUMMARY, HTML_REPORT, FIGURES, FOREST, CellRecord,
    results_hash, _atomic_write, _reason, _jsonable, _record_order, _natural, _sanitize, _now_iso, _fmt_p,
    _fmt_seconds, _ci_level, _censored_str, _family, _effect_str, _parity_str, incomplete_line, _provenance,
    _md_cell, rule_line,
)

if TYPE_CHECKING:  # rich and matplotlib load on first use: `import mcis_claims` stays light
    from rich.console import Console
    from rich.table import Table


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
    lines.append(f"- **rule** {rule_line(config, records)}")
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


def _unwritable(directory: Path, exc: OSError) -> ReportError:
    return ReportError(f"cannot write report directory {directory}: {_reason(exc)}; "
                       "pass --report-dir to a writable path")


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

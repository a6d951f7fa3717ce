"""The records of a run and what every reader of them shares: the record types, results.json
loading and its hash, atomic writes, and the small formatters of numbers and provenance.

report.py (writing a run's report), figures.py, report_html.py, baseline.py and stability.py all
import from here, and this module imports none of them: no import circle.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .errors import InputError, ReportError

SCHEMA_VERSION = 1
VERDICTS = ("supported", "negligible", "reversed", "inconclusive")
LEGACY_VERDICTS = ("refuted",)  # the old rule's word for negligible-or-reversed: old reports still load
RICH_STYLE = {"supported": "bold green", "negligible": "bold red", "reversed": "bold magenta",
              "refuted": "bold red", "inconclusive": "bold yellow"}
UNHASHED = ("timing_s", "costs_s", "figure", "unit_figure")  # vary between identical runs
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


def cell_record(spec, estimate, decision, cell, *, details=None, reproduce=None, timing_s=None, curves=(),
                curve_ylabel="KL(clean || perturbed) [nats]", curve_xlabel=None, curve_yscale=None,
                reference_lines=None, costs=None, plot=None, sequential=None) -> CellRecord:
    """The record of one judged cell: the claim's decision (verdict.decide) on its estimate, with the
    decision rule, the family and the per-unit sample kept beside the claim's own details; `sequential`:
    the looks of a --sequential cell (looks.Looks.to_dict), the stage that stopped it among them."""
    low, high = decision.interval
    sample = getattr(estimate, "sample", None)
    return CellRecord(
        claim=spec.id, model=cell.model_name, layer=cell.layer, site=cell.site, n=decision.n,
        statistic={"name": estimate.statistic_name, "value": estimate.statistic},
        effect={"name": estimate.name, "value": decision.effect, "ci_low": low, "ci_high": high,
                "ci_level": decision.level},
        p_value=decision.p_value, p_adjusted=decision.p_adjusted, verdict=decision.verdict,
        reason=decision.reason, spec=spec.to_dict(),
        details={**(details or {}), "estimate": estimate.to_dict(), "required_n": decision.required_n,
                 "decision": {
                     "rule": "order-statistic interval of the median at 1 - 2 alpha/M; exact sign test "
                             "against the SESOI, p_adj = min(1, M p); censored units placed against the claim",
                     "family": decision.family, "level": decision.level, "n_units": decision.n,
                     "n_documents": sample.n_documents if sample is not None else None,
                     "censored_fraction": decision.censored_fraction,
                     "undetermined_fraction": decision.undetermined_fraction,
                     "other_tests": decision.other_tests,
                     **({"sequential": sequential} if sequential else {})},
                 "multiplicity": f"Bonferroni over a family of {decision.family} claim cells "
                                 "(the collected grid before -k/-m, or the baseline's)",
                 "reproduce": reproduce},
        timing_s=timing_s, curves=list(curves), curve_ylabel=curve_ylabel, curve_xlabel=curve_xlabel,
        curve_yscale=curve_yscale, reference_lines=dict(reference_lines or {}), costs_s=dict(costs or {}),
        plot=plot, sample=sample,  # per-unit values, for --log-samples and the per-unit figure
    )


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


def rule_line(config: dict, records: list[dict]) -> str:
    """How the cells were judged, for a report's header: the looks and where the cells stopped, or fixed n.

    'sequential looks at 32, 64, 128 base prompts (1.6%, 10.9%, 87.5% of alpha); cells stopped at
    n = 32 (12), 64 (6), 128 (15); 15 judged once'."""
    looks = [((r.get("details") or {}).get("decision") or {}).get("sequential") for r in records]
    ran = [(look, r) for look, r in zip(looks, records) if look]
    if not ran:
        return ("fixed n: each cell judged once on all its bases" if not config.get("sequential")  # older runs: no key
                else "each cell judged once on all its bases (no cell had more than the first look's)")
    plan = ran[0][0]["plan"]
    stops = {}
    for _, r in ran:
        stops[r["n"]] = stops.get(r["n"], 0) + 1
    shares = ", ".join(f"{100 * a:.1f}%" for a in plan["alpha_shares"])
    stopped = ", ".join(f"{n} ({stops[n]})" for n in sorted(stops))
    return (f"sequential looks at {', '.join(map(str, plan['stages']))} base prompts ({shares} of alpha); "
            f"cells stopped at n = {stopped}; {len(records) - len(ran)} judged once")


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

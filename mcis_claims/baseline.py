"""Baselines: each cell's verdict and effect recorded per model, judged again on the next run.

Like pytest-benchmark's saved runs and pytest-regressions' data files: `--update-baseline`
writes every (claim, model, layer) cell of a run to one JSON file, and `--baseline PATH`
compares a later run with it, cell by cell:

    same      the verdict is the same and the effect lies inside the baseline's CI
    changed   the verdict differs: the run fails, naming the cell and both effects
    drift     the verdict is the same but the effect left the baseline's CI: a warning
    new       the cell is not in the baseline (a new model, claim or layer): reported, not judged
    missing   the baseline has the cell but this run did not compute it (deselected, other models)

A changed model fingerprint, corpus hash, seed, profile or library version warns, as
pytest-benchmark warns when `machine_info` differs: the comparison still runs. So does a
cell whose SAE weights (claim C10: `details.sae_weights_sha256`) differ from the baseline's.

The file (schema_version 1):

    {"schema_version": 1, "kind": "mcis-claims-baseline",
     "meta": {"created": ..., "seed": ..., "config": {...}, "versions": {...},
              "models": {name: {"fingerprint_sha256": ...}}, "corpus": {...}},
     "expectations": [{"claim", "model", "layer", "verdict", "effect_name", "effect",
                       "ci_low", "ci_high", "n"[, "sae_weights_sha256"]}, ...]}

`load_baseline` also reads a results.json or a report directory, so an earlier run can
serve as the baseline directly.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from .errors import InputError, McisError, ReportError

BASELINE_SCHEMA_VERSION = 1
BASELINE_KIND = "mcis-claims-baseline"
STATUSES = ("changed", "drift", "new", "missing", "same")
Status = Literal["same", "changed", "drift", "new", "missing"]
Key = tuple[str, str, int]
LEGACY_REFUTED = ("negligible", "reversed", "refuted")  # what an old baseline's `refuted` now reads as

# Versions that cannot move a number; the rest (torch, numpy, scipy, transformers, ...) warn when they differ.
_IGNORED_VERSIONS = frozenset({"platform", "git_sha", "torch_threads", "rich", "pytest", "hypothesis", "matplotlib"})
# Run settings that change what a cell measures; report_dir and models only say where and which.
_IGNORED_CONFIG = frozenset({"report_dir", "models", "layers", "comparable"})  # comparable follows profile


@dataclass(frozen=True)
class Expectation:
    """One recorded (claim, model, layer) cell: its verdict and effect with the CI."""

    claim: str
    model: str
    layer: int
    verdict: str
    effect_name: str
    effect: float  # NaN where the run recorded none
    ci_low: float
    ci_high: float
    n: int
    sae_weights_sha256: str | None = None  # C10: the SAE(s) the cell used; several as "tag:sha,..."

    @property
    def key(self) -> Key:
        return (self.claim, self.model, self.layer)

    @classmethod
    def from_record(cls, record: dict) -> Expectation:
        """From a results.json record (`CellRecord.to_dict()`)."""
        effect = record.get("effect") or {}
        return cls(claim=str(record["claim"]), model=str(record["model"]), layer=int(record["layer"]),
                   verdict=str(record["verdict"]), effect_name=str(effect.get("name") or "effect"),
                   effect=_float(effect.get("value")), ci_low=_float(effect.get("ci_low")),
                   ci_high=_float(effect.get("ci_high")), n=int(record.get("n") or 0),
                   sae_weights_sha256=_sae_hash((record.get("details") or {}).get("sae_weights_sha256")))

    def to_dict(self) -> dict:
        out = {"claim": self.claim, "model": self.model, "layer": self.layer, "verdict": self.verdict,
               "effect_name": self.effect_name, "effect": _json_float(self.effect),
               "ci_low": _json_float(self.ci_low), "ci_high": _json_float(self.ci_high), "n": self.n}
        if self.sae_weights_sha256:
            out["sae_weights_sha256"] = self.sae_weights_sha256
        return out

    def effect_str(self) -> str:
        return f"{self.effect_name} {_fmt(self.effect)} [{_fmt(self.ci_low)}, {_fmt(self.ci_high)}]"

    @property
    def legacy(self) -> bool:
        """Recorded under the old three-word rule, whose `refuted` lumped negligible and reversed."""
        return self.verdict == "refuted"

    def matches(self, verdict: str) -> bool:
        """Does a new verdict agree? An old `refuted` matches either `negligible` or `reversed`."""
        if self.legacy:
            return verdict in LEGACY_REFUTED
        return verdict == self.verdict


@dataclass(frozen=True)
class BaselineFile:
    """What `--update-baseline` writes: expectations by (claim, model, layer), and provenance."""

    expectations: dict[Key, Expectation]
    meta: dict  # created, seed, config (profile ...), versions, model fingerprints, corpus hash

    @property
    def models(self) -> set[str]:
        return {key[1] for key in self.expectations}


@dataclass(frozen=True)
class Comparison:
    """One cell of a run set against its baseline."""

    key: Key
    status: Status
    message: str  # one line naming the cell, both verdicts and both effects
    old: Expectation | None = None  # the baseline's; None when new
    new: Expectation | None = None  # this run's; None when missing

    def to_row(self) -> dict:
        claim, model, layer = self.key
        return {"claim": claim, "model": model, "layer": layer, "status": self.status,
                "old": self.old.to_dict() if self.old else None, "new": self.new.to_dict() if self.new else None}


@dataclass(frozen=True)
class BaselineReport:
    """The outcome of judging a run against a baseline, ready for the terminal."""

    path: Path
    comparisons: list[Comparison]
    failures: list[str]  # one line per changed verdict: the run fails
    warnings: list[str]  # drift, and provenance that differs
    lines: list[str]  # everything to print, failures and warnings included
    written: Path | None = None  # set when --update-baseline wrote the file

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    def counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.comparisons) for s in STATUSES}


# -- files ------------------------------------------------------------------------------------


def load_baseline(path) -> BaselineFile:
    """Read a baseline file (or a results.json / report directory from an earlier run).

    Raises ReportError when the file is missing, unreadable or not JSON, and InputError when its
    content is not a baseline of a schema this version reads; both with a one-line message.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        from .records import RESULTS

        path = path / RESULTS
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"baseline {path} does not exist; create it with --update-baseline "
                          f"(pytest claims/ --baseline {path} --update-baseline)") from None
    except OSError as exc:
        raise ReportError(f"cannot read baseline {path}: {_reason(exc)}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"baseline {path} is not valid JSON ({' '.join(str(exc).split())}); "
                          "regenerate it with --update-baseline") from None
    if not isinstance(data, dict):
        raise InputError(f"baseline {path}: top level is a {type(data).__name__}, not an object; "
                         "regenerate it with --update-baseline")
    if "records" in data and "expectations" not in data:  # a results.json: an earlier run as the baseline
        from .records import load_results

        results = load_results(path)
        records, meta = results["records"], dict(results.get("run") or {})
    else:
        version = data.get("schema_version")
        if version != BASELINE_SCHEMA_VERSION or data.get("kind", BASELINE_KIND) != BASELINE_KIND:
            raise InputError(f"baseline {path}: schema_version {version!r} is not {BASELINE_SCHEMA_VERSION}, "
                             "the version this mcis-claims reads; regenerate it with --update-baseline")
        records, meta = data.get("expectations"), data.get("meta") or {}
        if not isinstance(records, list) or not isinstance(meta, dict):
            raise InputError(f"baseline {path}: 'expectations' must be a list and 'meta' an object; "
                             "regenerate it with --update-baseline")
    expectations: dict[Key, Expectation] = {}
    for i, entry in enumerate(records):
        try:
            expectation = (Expectation.from_record(entry) if "effect" in entry and isinstance(entry["effect"], dict)
                           else _expectation_from_entry(entry))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"baseline {path}: entry {i} is malformed ({type(exc).__name__}: {exc}); "
                             "regenerate it with --update-baseline") from None
        if expectation.key in expectations:
            raise InputError(f"baseline {path}: entry {i} repeats {_cell(expectation.key)}; "
                             "each (claim, model, layer) may appear once")
        expectations[expectation.key] = expectation
    return BaselineFile(expectations=expectations, meta=meta)


def write_baseline(path, records: list, meta: dict) -> Path:
    """Write every record (results.json dicts or CellRecords) as the baseline at `path`; return it.

    The file is replaced atomically (a temporary file and a rename); parent folders are created.
    """
    from .records import _atomic_write, _jsonable, _record_order

    path = Path(path).expanduser()
    expectations = _expectations(records)
    document = {
        "schema_version": BASELINE_SCHEMA_VERSION, "kind": BASELINE_KIND,
        "meta": _jsonable(_baseline_meta(meta)),
        "expectations": [expectations[k].to_dict() for k in sorted(expectations, key=_record_order)],
    }
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, text.encode())
    except OSError as exc:
        raise ReportError(f"cannot write baseline {path}: {_reason(exc)}; pass --baseline a writable path") from None
    return path


# -- judging ----------------------------------------------------------------------------------


def compare(records: list, baseline: BaselineFile) -> list[Comparison]:
    """Each cell of `records` (and each baseline cell the run lacks) set against `baseline`.

    In (claim, model, layer) order, C2 before C10, as in results.json.
    """
    from .records import _record_order

    if not isinstance(baseline, BaselineFile):
        raise InputError(f"compare takes a BaselineFile (from load_baseline), got {type(baseline).__name__}")
    run = _expectations(records)
    known_models = baseline.models
    out = []
    for key in sorted(set(run) | set(baseline.expectations), key=_record_order):
        old, new = baseline.expectations.get(key), run.get(key)
        if old is None:
            why = (f"model {new.model} has no baseline" if new.model not in known_models
                   else "cell not in the baseline")
            out.append(Comparison(key, "new", f"{_cell(key)}: new, {new.verdict} ({new.effect_str()}); "
                                              f"{why}: reported, not judged", None, new))
        elif new is None:
            out.append(Comparison(key, "missing", f"{_cell(key)}: in the baseline ({old.verdict}, "
                                                  f"{old.effect_str()}) but not in this run", old, None))
        else:
            out.append(_judge(key, old, new))
    return out


def meta_warnings(run_meta: dict, baseline: BaselineFile) -> list[str]:
    """One line per provenance difference that could move a number: fingerprints, corpus, seed, config, versions."""
    run, base = _baseline_meta(run_meta or {}), baseline.meta or {}
    out = []
    base_models = base.get("models") or {}
    for name, info in (run.get("models") or {}).items():
        old = _hashes(base_models.get(name))
        for field_name, value in _hashes(info).items():
            if field_name in old and old[field_name] != value:
                out.append(f"model {name}: {field_name} {_short(value)} differs from the baseline's "
                           f"{_short(old[field_name])}; the weights changed")
    old_corpus, new_corpus = _hashes(base.get("corpus")), _hashes(run.get("corpus"))
    for field_name, value in new_corpus.items():
        if field_name in old_corpus and old_corpus[field_name] != value:
            out.append(f"corpus: {field_name} {_short(value)} differs from the baseline's "
                       f"{_short(old_corpus[field_name])}; the prompts changed")
    if "seed" in run and "seed" in base and run["seed"] != base["seed"]:
        out.append(f"seed {run['seed']} differs from the baseline's {base['seed']}; "
                   f"re-run with --seed={base['seed']} to compare like with like")
    old_config, new_config = base.get("config") or {}, run.get("config") or {}
    for name in sorted(set(old_config) & set(new_config) - _IGNORED_CONFIG - {"seed"}):
        if old_config[name] != new_config[name]:
            out.append(f"config {name}: {_short(new_config[name])} differs from the baseline's "
                       f"{_short(old_config[name])}")
    old_versions, new_versions = base.get("versions") or {}, run.get("versions") or {}
    changed = [f"{name} {old_versions[name]} -> {new_versions[name]}"
               for name in sorted(set(old_versions) & set(new_versions) - _IGNORED_VERSIONS)
               if old_versions[name] != new_versions[name]]
    if changed:
        out.append("versions differ from the baseline's: " + ", ".join(changed))
    return out


def sae_warnings(comparisons: list[Comparison]) -> list[str]:
    """One line per cell whose SAE weights hash differs from the baseline's (both recorded)."""
    out = []
    for c in comparisons:
        old = c.old.sae_weights_sha256 if c.old else None
        new = c.new.sae_weights_sha256 if c.new else None
        if old and new and old != new:
            out.append(f"{_cell(c.key)}: SAE weights sha256 {_short_hashes(new)} differ from the baseline's "
                       f"{_short_hashes(old)}; the SAE was trained or chosen differently, so its numbers may move")
    return out


def check_against_baseline(records: list, run_meta: dict, path, *, update: bool = False) -> BaselineReport:
    """Judge a finished run against the baseline at `path` (what `--baseline PATH` does at session end).

    `records`: the run's results.json records (or CellRecords). A changed verdict is a failure;
    drift and provenance differences are warnings; new and missing cells are reported only.
    With `update=True` (`--update-baseline`) the file is rewritten with this run's cells
    afterwards and nothing fails; an existing file is still compared, to show what moved.
    """
    path = Path(path).expanduser()
    baseline, lines = None, []
    if not update:
        baseline = load_baseline(path)  # missing or corrupt: a one-line McisError for the plugin to raise
    elif path.exists():
        try:
            baseline = load_baseline(path)  # shown for what moved; a corrupt file is simply replaced
        except McisError as exc:
            lines.append(f"previous baseline not compared: {exc}")
    comparisons = compare(records, baseline) if baseline is not None else []
    failures = [c.message for c in comparisons if c.status == "changed"]
    warnings = [c.message for c in comparisons if c.status == "drift"]
    if baseline is not None:
        warnings += [f"provenance: {w}" for w in meta_warnings(run_meta, baseline)]
        warnings += [f"provenance: {w}" for w in sae_warnings(comparisons)]
    counts = {s: sum(c.status == s for c in comparisons) for s in STATUSES}
    if baseline is not None:
        lines.append(f"baseline {path}: " + " · ".join(f"{n} {s}" for s, n in counts.items()))
        lines += [f"CHANGED {m}" for m in failures]
        lines += [f"warning: {m}" for m in warnings]
        lines += [f"new     {c.message}" for c in comparisons if c.status == "new"]
        missing = [c for c in comparisons if c.status == "missing"]
        if missing:
            lines.append(f"{len(missing)} baseline cell(s) not in this run (deselected or other models), "
                         f"e.g. {_cell(missing[0].key)}")
    written = None
    if update:
        written = write_baseline(path, records, run_meta)
        lines.append(f"baseline written: {written} ({len(_expectations(records))} cells)")
        failures = []  # regenerating accepts this run's verdicts
    elif failures:
        lines.append(f"{len(failures)} verdict(s) changed against {path}; if the change is intended, "
                     f"accept it with --baseline {path} --update-baseline")
    return BaselineReport(path=path, comparisons=comparisons, failures=failures, warnings=warnings,
                          lines=lines, written=written)


# -- helpers ----------------------------------------------------------------------------------


def _judge(key: Key, old: Expectation, new: Expectation) -> Comparison:
    both = f"({old.effect_str()} -> {new.effect_str()})"
    if not old.matches(new.verdict):
        return Comparison(key, "changed", f"{_cell(key)}: verdict {old.verdict} -> {new.verdict} {both}", old, new)
    if old.legacy and new.verdict != old.verdict:  # old "refuted", new "negligible" or "reversed"
        return Comparison(key, "drift", f"{_cell(key)}: baseline says refuted (the old rule), now {new.verdict}; "
                                        f"re-record the baseline (--update-baseline) {both}", old, new)
    if old.effect_name != new.effect_name:
        return Comparison(key, "drift", f"{_cell(key)}: verdict {new.verdict} unchanged, but the effect is now "
                                        f"{new.effect_name}, not {old.effect_name}; not comparable {both}", old, new)
    drift = _left_ci(old, new.effect)
    if drift:
        return Comparison(key, "drift", f"{_cell(key)}: verdict {new.verdict} unchanged, but {drift} {both}", old, new)
    return Comparison(key, "same", f"{_cell(key)}: verdict {new.verdict} unchanged {both}", old, new)


def _left_ci(old: Expectation, value: float) -> str:
    """Why `value` is not what the baseline expects ('' when it is)."""
    if not math.isfinite(value):
        return "" if not math.isfinite(old.effect) else f"{old.effect_name} is no longer finite"
    low = old.ci_low if math.isfinite(old.ci_low) else -math.inf
    high = old.ci_high if math.isfinite(old.ci_high) else math.inf
    if low == -math.inf and high == math.inf:  # no CI recorded: only a change in finiteness counts
        return "" if math.isfinite(old.effect) else f"{old.effect_name} was not finite in the baseline"
    if low <= value <= high:
        return ""
    side = "below" if value < low else "above"
    return f"{old.effect_name} {_fmt(value)} is {side} the baseline's CI [{_fmt(old.ci_low)}, {_fmt(old.ci_high)}]"


def _expectations(records) -> dict[Key, Expectation]:
    if records is None or isinstance(records, (str, bytes, dict)):
        raise InputError(f"records must be a list of results.json records, got {type(records).__name__}")
    out = {}
    for i, record in enumerate(records):
        if hasattr(record, "to_dict"):  # a CellRecord
            record = record.to_dict()
        try:
            expectation = Expectation.from_record(record)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"record {i} is not a results.json record ({type(exc).__name__}: {exc})") from None
        out[expectation.key] = expectation  # a later record for one cell replaces an earlier one, as in RunReport
    return out


def _expectation_from_entry(entry: dict) -> Expectation:
    if not isinstance(entry, dict):
        raise TypeError(f"expected an object, got {type(entry).__name__}")
    return Expectation(claim=str(entry["claim"]), model=str(entry["model"]), layer=int(entry["layer"]),
                       verdict=str(entry["verdict"]), effect_name=str(entry.get("effect_name") or "effect"),
                       effect=_float(entry.get("effect")), ci_low=_float(entry.get("ci_low")),
                       ci_high=_float(entry.get("ci_high")), n=int(entry.get("n") or 0),
                       sae_weights_sha256=_sae_hash(entry.get("sae_weights_sha256")))


def _baseline_meta(meta: dict) -> dict:
    """The provenance a baseline keeps: no prompt windows or site fits (large), hashes of models and corpus."""
    meta = dict(meta or {})
    out = {"created": meta.get("created") or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    for name in ("seed", "config", "versions", "command", "results_hash", "family"):
        if meta.get(name) is not None:
            out[name] = meta[name]
    models = meta.get("models")
    if isinstance(models, dict):
        out["models"] = {name: {k: v for k, v in info.items() if k in ("name", "source", "arch") or "sha256" in k}
                         for name, info in models.items() if isinstance(info, dict)}
    corpus = meta.get("corpus")
    if isinstance(corpus, dict):
        out["corpus"] = {k: v for k, v in corpus.items() if k in ("name", "source") or "sha256" in k}
    return out


def _hashes(info) -> dict:
    return {k: v for k, v in info.items() if "sha256" in k and v} if isinstance(info, dict) else {}


def _sae_hash(value) -> str | None:
    """A record's sae_weights_sha256 as one string: a hash, or "tag:hash,..." sorted by tag for several."""
    if not value:
        return None
    if isinstance(value, dict):
        return ",".join(f"{tag}:{value[tag]}" for tag in sorted(value))
    return str(value)


def _short_hashes(value: str) -> str:
    return ",".join(":".join(part.split(":")[:-1] + [_short(part.split(":")[-1])]) for part in value.split(","))


def _cell(key: Key) -> str:
    claim, model, layer = key
    return f"{claim} {model} layer {layer}"


def _float(x) -> float:
    if x is None:
        return math.nan
    return float(x)  # a string or list raises ValueError/TypeError: a malformed entry


def _json_float(x: float):
    return x if math.isfinite(x) else None


def _fmt(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) else "—"


def _short(value) -> str:
    """A hash as its first 12 hex digits, anything else cut at 40 characters."""
    text = str(value)
    if len(text) >= 32 and all(c in "0123456789abcdef" for c in text.lower()):
        return text[:12] + "…"
    return text if len(text) <= 40 else text[:39] + "…"


def _reason(exc: OSError) -> str:
    text = exc.strerror or str(exc) or type(exc).__name__
    return " ".join(text.split())

"""Per-unit read-outs of every cell (`--log-samples`) as Parquet, and `load_results(DIR)` for analysis.

With `--log-samples`, each judged cell also writes `<report dir>/samples/<claim>_<model>_L<layer>.parquet`:
one row per unit of analysis (a base prompt) with the paired value the verdict was decided on,
as bounds (`d_low <= d <= d_high`; a censored arm leaves one end infinite: `censored_a` means the
claim's arm A never crossed the threshold, so d is only a lower bound), `d` (the point used for
figures: the bound where one end is open, NaN where both are), whether d is a log ratio, the
unit's corpus document, the two arms d was made of (`arm_a`, `arm_b`: d = log(arm_a / arm_b) or
arm_a - arm_b; a censored arm at its bound) and, when the units are the cell's base prompts, the prompt window's
text. Then one column per curve set the claim drew (`curve:<kind>`), holding that base's read-out
at every radius of `radii:<kind>` (a list per row), e.g. its median KL over directions.

    records, samples = mcis_claims.load_results("reports/latest")
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLES = "samples"


def sample_frame(record, cell=None):
    """A pandas DataFrame of `record`'s units (see the module docstring); None if it has no per-unit sample."""
    import pandas as pd

    sample = record.sample
    if sample is None:
        return None
    low, high = np.asarray(sample.low, dtype=float), np.asarray(sample.high, dtype=float)
    n = low.size
    frame = pd.DataFrame({
        "claim": record.claim, "model": record.model, "layer": int(record.layer), "unit": np.arange(n),
        "d_low": low, "d_high": high, "d": np.asarray(sample.point, dtype=float),
        "censored_a": np.isposinf(high), "censored_b": np.isneginf(low), "log_scale": bool(sample.log_scale),
    })
    for column, arm in (("arm_a", sample.arm_a), ("arm_b", sample.arm_b)):
        if arm is not None and len(arm) == n:
            frame[column] = np.asarray(arm, dtype=float)
    if sample.documents is not None and len(sample.documents) == n:
        frame["document"] = np.asarray(sample.documents).astype("int64")
    prompts = None
    if cell is not None:
        try:
            prompts = cell.prompts
        except Exception:  # a cell without prompts (toys): no text
            prompts = None
    if prompts is not None and len(prompts) == n:
        try:
            tokenizer = cell.model.tokenizer
            frame["prompt"] = [tokenizer.decode(row) for row in prompts.tokens.tolist()]
        except Exception:
            pass
    for curve in record.curves:
        values = np.asarray(curve.values, dtype=float)
        if values.shape[0] == n:
            frame[f"curve:{curve.name}"] = list(values)
            frame[f"radii:{curve.name}"] = [np.asarray(curve.radii, dtype=float)] * n
    return frame


def write_samples(directory, record, cell=None) -> Path | None:
    """<directory>/samples/<claim>_<model>_L<layer>.parquet, atomically; its path, or None if nothing to write."""
    from .cache import atomic_write
    from .records import _sanitize

    frame = sample_frame(record, cell)
    if frame is None:
        return None
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    path = Path(directory) / SAMPLES / f"{_sanitize(record.claim)}_{_sanitize(record.model)}_L{record.layer}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, buffer.getvalue())
    return path


def load_results(path, *, allow_incomplete: bool = False):
    """(records, samples) of a report directory as pandas DataFrames.

    records: one row per cell (claim, model, layer, site, n, effect, ci_low, ci_high, ci_level,
    p_value, p_adjusted, verdict, family, reason, plus the record's spec and details as dicts).
    samples: the cells' per-unit rows written by --log-samples (empty without it).
    """
    import pandas as pd

    from .records import RESULTS
    from .records import load_results as load_document

    directory = Path(path).expanduser()
    if directory.name == RESULTS:
        directory = directory.parent
    data = load_document(directory, allow_incomplete=allow_incomplete)
    rows = []
    for r in data["records"]:
        effect = r.get("effect") or {}
        rows.append({
            "claim": r["claim"], "model": r["model"], "layer": r["layer"], "site": r.get("site"), "n": r.get("n"),
            "effect_name": effect.get("name"), "effect": effect.get("value"), "ci_low": effect.get("ci_low"),
            "ci_high": effect.get("ci_high"), "ci_level": effect.get("ci_level"), "p_value": r.get("p_value"),
            "p_adjusted": r.get("p_adjusted"), "verdict": r["verdict"],
            "family": ((r.get("details") or {}).get("decision") or {}).get("family"), "reason": r.get("reason"),
            "spec": r.get("spec"), "details": r.get("details"),
        })
    records = pd.DataFrame(rows)
    files = sorted((directory / SAMPLES).glob("*.parquet"))
    samples = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame(
        columns=["claim", "model", "layer", "unit", "d_low", "d_high", "d", "censored_a", "censored_b", "log_scale"])
    return records, samples

"""Figures: per cell its read-out curves and its per-prompt values (the tested quantity); per run
the forest plot of every cell's effect, and per claim its effect against layer.

matplotlib is used through its object API with the Agg canvas (no pyplot state, no
display), and every figure is closed after saving, so long runs do not leak memory.
"""
from __future__ import annotations

import io
import math
import re
import textwrap
from pathlib import Path

import numpy as np

from .errors import InputError
from .records import (VERDICTS, CellRecord, _atomic_write, _ci_level, _effect_str, _finite, _fmt, _fmt_p,
                      _record_order)

PLOT_COLOR = {"supported": "#1a7f37", "negligible": "#cf222e", "reversed": "#8250df", "refuted": "#cf222e",
              "inconclusive": "#b08800"}
LOG_FLOOR = 1e-6  # read-outs below this are drawn at it on a log axis (KL of exactly 0 is common)

# One colour per direction kind in every figure, so figures compare at a glance.
KIND_COLOR = {
    "isotropic": "#7f7f7f", "cov_random_mixture": "#1f77b4", "real_mixture": "#d62728",
    "real_other": "#ff7f0e", "gaussian_base": "#9467bd", "real_base": "#d62728",
    "optimized": "#2ca02c", "sae_decoder": "#8c564b", "sae_synthetic": "#e377c2",
}
SPARE_COLORS = ("#17becf", "#bcbd22", "#8c564b", "#e377c2", "#2ca02c", "#ff7f0e", "#1f77b4")


def plot_curves(record: CellRecord, path: Path) -> None:
    """Draw the read-out against radius: median and 25-75% band per direction kind."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    if not record.curves:
        raise InputError(f"{record.claim} {record.model} {record.site}: no curves to plot")
    path = Path(path)
    summaries = record.curve_summary()
    values = np.concatenate([c.values.ravel() for c in record.curves])
    values = values[np.isfinite(values)]
    top = float(values.max()) if values.size else 0.0
    # Log y for non-negative read-outs (KL); tiny negative rounding noise is floored too.
    log_y = top > 0 and float(values.min()) >= -1e-3 * top
    if record.curve_yscale is not None:
        log_y = record.curve_yscale == "log"
    positive = np.concatenate([c.radii[c.radii > 0] for c in record.curves])
    # Log x for geometric radius schedules; their r = 0 point cannot be drawn there.
    # (a custom x axis, e.g. block index or layer, is linear)
    log_x = record.curve_xlabel is None and positive.size > 2 and positive.max() / positive.min() >= 20

    fig = Figure(figsize=(10, 5.4), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.085, 0.13, 0.57, 0.72))
    used = {KIND_COLOR.get(_kind_key(c.kind)) for c in record.curves}
    spare = iter([c for c in SPARE_COLORS if c not in used] + list(SPARE_COLORS))
    drawn = []  # every y value on the axes, for the limits
    for name, s in summaries.items():
        color = KIND_COLOR.get(_kind_key(s["kind"])) or next(spare)
        keep = s["radii"] > 0 if log_x else np.ones_like(s["radii"], dtype=bool)
        x = s["radii"][keep]
        median, q25, q75 = (s[k][keep] for k in ("median", "q25", "q75"))
        if log_y:
            median, q25, q75 = (np.maximum(v, LOG_FLOOR) for v in (median, q25, q75))
        drawn += [q25, q75]
        empty = "" if np.isfinite(median).any() else ", no finite values"
        ax.fill_between(x, q25, q75, color=color, alpha=0.18, linewidth=0)
        ax.plot(x, median, color=color, linewidth=2.2, marker="o", markersize=3,
                label=f"{name}  (n={s['n']}{empty})")

    for label, y in record.reference_lines.items():
        if _finite(y):
            ax.axhline(y, color="#444444", linestyle=":", linewidth=1.2, label=label)
            drawn.append(np.array([y]))
    threshold = record.details.get("kl_threshold_nats") if record.curve_ylabel.startswith("KL") else None
    if _finite(threshold) and threshold > 0:
        ax.axhline(threshold, color="black", linestyle="--", linewidth=1, alpha=0.7,
                   label=f"KL threshold {threshold:g} nats")
        drawn.append(np.array([threshold]))
    floored = False
    if log_y:
        ys = np.concatenate(drawn)
        ys = ys[np.isfinite(ys)]
        low, high = (float(ys.min()), float(ys.max())) if ys.size else (LOG_FLOOR, 1.0)
        floored = low <= LOG_FLOOR
        ax.set_yscale("log")
        ax.yaxis.set_minor_locator(NullLocator())  # decades are enough; minor ticks double the draw time
        ax.set_ylim(low / 1.6, high * 2.5)
    if log_x:
        ax.set_xscale("log")
    ax.grid(True, which="major", alpha=0.3)
    xlabel = record.curve_xlabel or "radius / median ‖resid‖"
    ax.set_xlabel(xlabel + ("  (log scale; r = 0 not drawn)" if log_x else ""), fontsize=11)
    note = f"\nlog scale, values < {LOG_FLOOR:g} drawn at {LOG_FLOOR:g}" if floored else " (log scale)" * log_y
    ax.set_ylabel(record.curve_ylabel + note, fontsize=10)
    ax.tick_params(labelsize=9)
    model = record.model if len(record.model) <= 40 else "…" + record.model[-39:]
    ax.set_title(f"{record.claim} {model} {record.site} — {record.verdict}",
                 loc="left", fontsize=12, fontweight="bold")
    if record.spec.get("title"):
        fig.text(0.085, 0.925, record.spec["title"], fontsize=10, color="#555555")

    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=9,
              title="median, band: 25–75% of prompts", title_fontsize=8, alignment="left")
    ax.text(1.02, 0.0, _info_box(record), transform=ax.transAxes, va="bottom", ha="left", fontsize=8.5,
            family="monospace", linespacing=1.35,
            bbox=dict(boxstyle="round,pad=0.5", facecolor="#f6f8fa", edgecolor=PLOT_COLOR[record.verdict],
                      linewidth=1.5))
    save_png(fig, path)


def save_png(fig, path) -> None:
    """Render to PNG in memory, then write atomically: a reader never sees half a figure."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png")
    finally:
        fig.clear()  # the OO Figure is never registered with pyplot, so nothing else holds it
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, buffer.getvalue())


# Forest figure geometry, in inches: rows stay the same height whatever the number of cells.
_FOREST_ROW, _FOREST_TOP, _FOREST_PANEL_HEAD, _FOREST_PANEL_FOOT = 0.27, 0.8, 0.32, 0.55
_FOREST_LEFT, _FOREST_RIGHT, _FOREST_WIDTH = 2.5, 2.8, 11.5
_FOREST_NULL_COLOR, _FOREST_SESOI_COLOR = "#57606a", "#0969da"


def plot_forest(records: list[dict], path: Path) -> None:
    """Every cell's effect with its CI, one row per cell, grouped by claim: figures/forest.png.

    `records` are results.json records. One panel per effect name (ratios on a log axis), a solid
    line at the null (1 for ratios, 0 otherwise), a dashed segment at each claim's SESOI over that
    claim's rows, and points coloured by verdict. The right margin repeats the numbers.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, NullLocator
    from matplotlib.transforms import blended_transform_factory

    if not records:
        raise InputError("plot_forest: no records to draw")
    panels: dict[str, list[dict]] = {}  # effect name -> records, in (claim, model, layer) order
    for r in sorted(records, key=lambda r: _record_order((r["claim"], r["model"], r["layer"]))):
        panels.setdefault(str((r.get("effect") or {}).get("name") or "effect"), []).append(r)

    layouts = [(name, _forest_rows(rs)) for name, rs in panels.items()]
    heights = [len(rows) * _FOREST_ROW + 0.2 for _, rows in layouts]  # axes heights
    fig_h = _FOREST_TOP + sum(h + _FOREST_PANEL_HEAD + _FOREST_PANEL_FOOT for h in heights)
    fig = Figure(figsize=(_FOREST_WIDTH, fig_h), dpi=110)
    FigureCanvasAgg(fig)
    level = _ci_level((records[0].get("effect") or {}))
    fig.text(0.012, 1 - 0.22 / fig_h, f"Effect sizes with {level}, every claim × model × layer",
             fontsize=12.5, fontweight="bold", va="top")
    fig.text(0.012, 1 - 0.5 / fig_h, f"{_plural(len(records), 'cell')} · solid: no effect · dashed: the claim's "
             "smallest effect of interest (SESOI)", fontsize=9, color="#555555", va="top")

    top = fig_h - _FOREST_TOP
    for (name, rows), height in zip(layouts, heights):
        top -= _FOREST_PANEL_HEAD
        ax = fig.add_axes((_FOREST_LEFT / _FOREST_WIDTH, (top - height) / fig_h,
                           1 - (_FOREST_LEFT + _FOREST_RIGHT) / _FOREST_WIDTH, height / fig_h))
        top -= height + _FOREST_PANEL_FOOT
        ratio = "ratio" in name.lower()
        null = 1.0 if ratio else 0.0
        log_x = ratio and _forest_all_positive(rows)
        right = blended_transform_factory(ax.transAxes, ax.transData)
        xs = [null]  # every x that must be visible
        y_ticks, y_labels = [], []
        for y, kind, item in rows:
            if kind == "claim":  # a header row: the claim, its title, its SESOI; a light band behind its rows
                claim, title, sesoi, span = item
                label = f"{claim}" + (f"  {title}" if title else "")
                ax.text(0.005, y, label if len(label) <= 70 else label[:69] + "…", transform=right,
                        fontsize=9.5, fontweight="bold", va="center", ha="left", color="#1f2328")
                ax.axhspan(span[0] - 0.5, y + 0.5, color="#f6f8fa", zorder=0, linewidth=0)
                for edge in (sesoi if isinstance(sesoi, tuple) else (sesoi,)):  # equivalence: both margins
                    if _finite(edge) and (edge > 0 or not log_x):
                        ax.vlines(edge, span[0] - 0.45, span[1] + 0.45, colors=_FOREST_SESOI_COLOR,
                                  linestyles="--", linewidth=1.3, zorder=2)
                        xs.append(edge)
                continue
            r = item
            effect = r.get("effect") or {}
            value, low, high = (effect.get(k) for k in ("value", "ci_low", "ci_high"))
            color = PLOT_COLOR.get(r["verdict"], "#57606a")
            ok = (lambda v: _finite(v) and (v > 0 or not log_x))
            if ok(low) and ok(high):
                ax.hlines(y, low, high, colors=color, linewidth=2.4, zorder=3)
                xs += [low, high]
            if ok(value):
                ax.plot([value], [y], marker="D" if r["verdict"] == "supported" else "o", markersize=6.5,
                        color=color, markeredgecolor="white", markeredgewidth=0.8, zorder=4)
                xs.append(value)
            y_ticks.append(y)
            model = r["model"] if len(r["model"]) <= 28 else "…" + r["model"][-27:]
            y_labels.append(f"{model}  L{r['layer']}")
            ax.text(1.015, y, f"{_effect_str(effect)}  {r['verdict']}", transform=right, fontsize=8,
                    family="monospace", va="center", ha="left", color=color, clip_on=False)
        ax.axvline(null, color=_FOREST_NULL_COLOR, linewidth=1.2, zorder=1)
        ax.set_ylim(rows[-1][0] - 0.6, rows[0][0] + 0.6)
        ax.set_yticks(y_ticks, y_labels, fontsize=8.5)
        ax.tick_params(axis="y", length=0)
        ax.xaxis.set_minor_locator(NullLocator())
        xs = np.array([x for x in xs if _finite(x) and (x > 0 or not log_x)], dtype=np.float64)
        if log_x:
            ax.set_xscale("log")
            lo, hi = np.log(xs.min()), np.log(xs.max())
            pad = max(0.08 * (hi - lo), 0.05)
            ax.set_xlim(math.exp(lo - pad), math.exp(hi + pad))
            ax.xaxis.set_major_locator(FixedLocator(_log_ticks(math.exp(lo - pad), math.exp(hi + pad))))
            ax.xaxis.set_major_formatter(lambda x, _pos: f"{x:g}")
            ax.xaxis.set_minor_locator(NullLocator())
        else:
            lo, hi = float(xs.min()), float(xs.max())
            pad = max(0.08 * (hi - lo), 1e-3 * max(abs(lo), abs(hi), 1.0))
            ax.set_xlim(lo - pad, hi + pad)
        ax.grid(True, axis="x", alpha=0.3, zorder=0)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        ax.set_xlabel(f"{name}" + ("  (log scale)" if log_x else ""), fontsize=10)
        ax.set_title(f"{name}: {_plural(len(panels[name]), 'cell')}", loc="left", fontsize=10, color="#555555")

    present = [v for v in VERDICTS if any(r["verdict"] == v for r in records)]
    handles = [Line2D([], [], color=PLOT_COLOR[v], marker="D" if v == "supported" else "o", linewidth=2.4,
                      label=v) for v in present]
    handles += [Line2D([], [], color=_FOREST_NULL_COLOR, linewidth=1.2, label="no effect"),
                Line2D([], [], color=_FOREST_SESOI_COLOR, linestyle="--", linewidth=1.3, label="SESOI")]
    fig.legend(handles=handles, loc="upper right", bbox_to_anchor=(0.99, 1 - 0.12 / fig_h), ncol=len(handles),
               frameon=False, fontsize=9, handlelength=1.8, columnspacing=1.2)
    save_png(fig, path)


def _forest_rows(records: list[dict]) -> list[tuple[float, str, object]]:
    """(y, "claim" | "cell", item) from the top down: a header row per claim, then its cells."""
    rows, y = [], 0.0
    by_claim: dict[str, list[dict]] = {}
    for r in records:
        by_claim.setdefault(str(r["claim"]), []).append(r)
    for claim, cells in by_claim.items():
        spec = cells[0].get("spec") or {}
        sesoi = cells[0].get("sesoi", spec.get("sesoi"))
        if spec.get("kind") == "equivalence" and _finite(sesoi):  # a margin around the null, not a point
            sesoi = sesoi_edges(spec, (cells[0].get("effect") or {}).get("name", ""))
        header_y = y
        y -= 1
        first = y
        for r in cells:
            rows.append((y, "cell", r))
            y -= 1
        rows.insert(len(rows) - len(cells), (header_y, "claim", (claim, spec.get("title"), sesoi, (y + 1, first))))
        y -= 0.35  # a little air between claims
    return rows


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _forest_all_positive(rows) -> bool:
    """A log axis needs positive effects; a ratio panel with a zero or negative one is drawn linear."""
    values = [(r.get("effect") or {}).get(k) for _, kind, r in rows if kind == "cell"
              for k in ("value", "ci_low", "ci_high")]
    finite = [v for v in values if _finite(v)]
    return bool(finite) and min(finite) > 0


def _log_ticks(low: float, high: float) -> list[float]:
    """Round ticks for a log axis: 1-2-5 decades on a wide range, evenly spaced round numbers on a narrow one."""
    from matplotlib.ticker import MaxNLocator

    if high / low >= 4:
        for mantissas in ((1,), (1, 2, 5), (1, 1.5, 2, 3, 5, 7)):
            ticks = [float(f"{m * 10.0 ** e:.3g}") for e in range(math.floor(math.log10(low)),
                                                                   math.ceil(math.log10(high)) + 1)
                     for m in mantissas]
            ticks = [t for t in ticks if low <= t <= high]
            if len(ticks) >= 4:
                return ticks
    # Less than a factor 4 (e.g. 0.86-1.1): a log axis is nearly linear there, so linear round ticks read best.
    ticks = MaxNLocator(nbins=7, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high)
    return [float(f"{t:.6g}") for t in ticks if low <= t <= high and t > 0]



def _kind_key(kind: str) -> str:
    return re.sub(r"[\s-]+", "_", kind.strip().lower())

def _info_box(record: CellRecord) -> str:
    e, spec = record.effect, record.spec
    lines = [f"{e.get('name', 'effect')} = {_fmt(e.get('value'))}",
             f"  {_ci_level(e)} [{_fmt(e.get('ci_low'))}, {_fmt(e.get('ci_high'))}]",
             f"p = {_fmt_p(record.p_value)}   p_adj = {_fmt_p(record.p_adjusted)}",
             f"n = {record.n} prompts"]
    if spec.get("sesoi") is not None or spec.get("alpha") is not None:
        lines.append(f"SESOI {_fmt(spec.get('sesoi'))}   alpha {_fmt(spec.get('alpha'))}")
    lines.append(f"verdict: {record.verdict}")
    reason = textwrap.wrap(record.reason or "", width=36)
    if reason:
        lines += [""] + reason[:6] + (["…"] if len(reason) > 6 else [])
    return "\n".join(lines)


def sesoi_edges(spec: dict, effect_name: str) -> tuple:
    """Where a claim's SESOI lies on its effect's scale: one value, or both margins of an equivalence."""
    sesoi = spec.get("sesoi")
    if not _finite(sesoi):
        return ()
    if spec.get("kind") == "equivalence":
        return (1 / (1 + sesoi), 1 + sesoi) if effect_name.endswith("ratio") else (-sesoi, sesoi)
    return (sesoi,)


def plot_units(record: CellRecord, path: Path) -> None:
    """The tested quantity itself: each unit's paired value (e.g. per-prompt ratio), sorted, with the
    null and SESOI lines and the median with its interval. A censored unit is drawn at its bound as
    a triangle pointing where the truth lies; a unit with both arms censored is counted, not drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sample = record.sample
    if sample is None or sample.n == 0:
        raise InputError(f"{record.claim} {record.model} {record.site}: no per-unit values to plot")
    to_scale = np.exp if sample.log_scale else (lambda v: v)
    point = sample.point
    order = np.argsort(np.where(np.isfinite(point), point, np.inf), kind="stable")
    low, high, point = sample.low[order], sample.high[order], point[order]
    x = np.arange(1, sample.n + 1)
    observed = np.isfinite(low) & np.isfinite(high)
    above, below = np.isfinite(low) & ~np.isfinite(high), ~np.isfinite(low) & np.isfinite(high)
    effect, name = record.effect, str(record.effect.get("name") or "effect")
    color = PLOT_COLOR.get(record.verdict, "#57606a")

    fig = Figure(figsize=(10, 4.6), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.085, 0.14, 0.64, 0.7))
    ax.scatter(x[observed], to_scale(point[observed]), s=14, color="#57606a", zorder=3, label="observed")
    if above.any():
        ax.scatter(x[above], to_scale(low[above]), marker="^", s=26, color="#9a6700", zorder=3,
                   label="censored: at least this")
    if below.any():
        ax.scatter(x[below], to_scale(high[below]), marker="v", s=26, color="#8250df", zorder=3,
                   label="censored: at most this")
    null = 1.0 if sample.log_scale else 0.0
    ax.axhline(null, color="#57606a", linewidth=1.2, label=f"no effect ({null:g})")
    for i, edge in enumerate(sesoi_edges(record.spec, name)):
        ax.axhline(edge, color="#0969da", linestyle="--", linewidth=1.3, label="SESOI" if i == 0 else None)
    value, ci_low, ci_high = (effect.get(k) for k in ("value", "ci_low", "ci_high"))
    if _finite(ci_low) and _finite(ci_high):
        ax.axhspan(ci_low, ci_high, color=color, alpha=0.15, linewidth=0, label=f"median's {_ci_level(effect)}")
    if _finite(value):
        ax.axhline(value, color=color, linewidth=2, label=f"median {_fmt(value)} ({record.verdict})")
    if sample.log_scale:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(lambda v, _pos: f"{v:g}")
        ax.yaxis.set_minor_formatter(lambda v, _pos: f"{v:g}")
    ax.grid(True, alpha=0.3)
    ax.set_xlabel("unit (base prompt), sorted by value", fontsize=10)
    ax.set_ylabel(name.replace("median_", "per-unit ") + (" (log scale)" if sample.log_scale else ""), fontsize=10)
    model = record.model if len(record.model) <= 40 else "…" + record.model[-39:]
    ax.set_title(f"{record.claim} {model} {record.site}: the tested quantity, per unit", loc="left",
                 fontsize=12, fontweight="bold")
    both = int(np.count_nonzero(~np.isfinite(low) & ~np.isfinite(high)))
    fig.text(0.085, 0.9, f"n = {sample.n}" + (f"; {both} with both arms censored (not drawn)" if both else ""),
             fontsize=9, color="#555555")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=9)
    save_png(fig, path)


def _per_layer(record: dict) -> dict | None:
    """A depth claim's per-layer profile (details.per_layer), or None."""
    per_layer = (record.get("details") or {}).get("per_layer")
    return per_layer if isinstance(per_layer, dict) and per_layer else None


def depth_points(records: list[dict]) -> dict[str, list[tuple[int, float, float, float]]]:
    """model -> [(layer, effect, ci_low, ci_high)] for one claim: a depth claim's own per-layer
    profile (details.per_layer), else the claim's cells at each layer of the grid."""
    out: dict[str, list] = {}
    for r in records:
        per_layer = _per_layer(r)
        if per_layer:
            for layer, row in per_layer.items():
                if isinstance(row, dict) and _finite(row.get("median_ratio")):
                    ci = row.get("ci") or [None, None]
                    out.setdefault(r["model"], []).append((int(layer), row["median_ratio"], ci[0], ci[1]))
        elif isinstance(r.get("layer"), int) and r["layer"] >= 0:
            e = r.get("effect") or {}
            out.setdefault(r["model"], []).append((r["layer"], e.get("value"), e.get("ci_low"), e.get("ci_high")))
    return {m: sorted(set(points)) for m, points in out.items()}


def plot_depth(claim: str, records: list[dict], path: Path) -> bool:
    """One claim's effect with its interval against layer, a line per model; False if no model has two layers."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = {m: p for m, p in depth_points(records).items() if len(p) >= 2}
    if not points:
        return False
    first = records[0]
    spec, effect = first.get("spec") or {}, first.get("effect") or {}
    name = str(effect.get("name") or "effect")
    profiled = any(_per_layer(r) for r in records)  # a depth claim: its own per-layer gap profile
    if profiled:
        name = "median_ratio"  # the profile is the per-layer gap, whatever the decision's effect
    ratio = name.endswith("ratio")
    fig = Figure(figsize=(9, 4.4), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.09, 0.14, 0.62, 0.7))
    for i, (model, rows) in enumerate(points.items()):
        layers, values, lows, highs = (np.array([r[j] if _finite(r[j]) else np.nan for r in rows], dtype=float)
                                       for j in range(4))
        color = SPARE_COLORS[i % len(SPARE_COLORS)]
        errors = np.vstack([values - lows, highs - values])
        ax.errorbar(layers, values, yerr=np.where(np.isfinite(errors), errors, 0), color=color, marker="o",
                    capsize=4, linewidth=1.8, label=model if len(model) <= 32 else "…" + model[-31:])
    ax.axhline(1.0 if ratio else 0.0, color="#57606a", linewidth=1.2, label="no effect")
    if not profiled:  # the SESOI is on the decision's scale, not the profile's
        for j, edge in enumerate(sesoi_edges(spec, name)):
            ax.axhline(edge, color="#0969da", linestyle="--", linewidth=1.3, label="SESOI" if j == 0 else None)
    if ratio and all(_finite(v) and v > 0 for rows in points.values() for r in rows for v in r[1:]):
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(lambda v, _pos: f"{v:g}")
        ax.yaxis.set_minor_formatter(lambda v, _pos: f"{v:g}")
    ax.grid(True, alpha=0.3)
    ax.set_xlabel("layer (perturbed at blocks.L.hook_resid_pre)", fontsize=10)
    ax.set_ylabel(f"{name} with {_ci_level(effect)}", fontsize=10)
    ax.set_title(f"{claim}: effect against layer", loc="left", fontsize=12, fontweight="bold")
    if spec.get("title"):
        fig.text(0.09, 0.9, spec["title"], fontsize=9.5, color="#555555")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=9)
    save_png(fig, path)
    return True

"""report.html: the run's main artefact, one self-contained page (figures inlined, no scripts).

From the top: what ran (models, command, config, seed, profile, family; a smoke run's "not
comparable" label where it cannot be missed), the verdict counts, a claims × models × layers
matrix whose every cell links to its section, the forest plot, then one section per claim (title,
statement, null hypothesis, SESOI, the effect against layer when it has several) holding one
article per cell (reason, curves, the per-unit values that were tested, the reproduce line).
"""
from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

from .records import VERDICTS, _effect_str, _fmt_p, _fmt_seconds, _natural, _provenance, incomplete_line, rule_line

esc = html.escape

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1180px; margin: 2em auto; padding: 0 1em; color: #1f2328; }
table { border-collapse: collapse; margin: 0.5em 0 1em; } td, th { border: 1px solid #d0d7de; padding: 4px 8px; }
th { background: #f6f8fa; text-align: left; } img { max-width: 100%; } code { background: #f6f8fa; padding: 1px 4px; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; } dl.run { display: grid; grid-template-columns: 9em 1fr; gap: 2px 1em; }
dl.run dt { font-weight: bold; } dl.run dd { margin: 0; }
.supported { color: #1a7f37; font-weight: bold; } .negligible { color: #cf222e; font-weight: bold; }
.reversed { color: #8250df; font-weight: bold; } .inconclusive { color: #9a6700; font-weight: bold; }
.banner { padding: 0.6em 1em; border-radius: 6px; font-weight: bold; margin: 0.5em 0; }
.smoke { background: #fff8c5; border: 1px solid #d4a72c; } .incomplete { background: #ffebe9; border: 1px solid #cf222e; }
.matrix td a { text-decoration: none; color: inherit; } .matrix td { white-space: nowrap; font-size: 0.9em; }
article { border-top: 1px solid #d0d7de; padding-top: 0.5em; margin-top: 1em; }
section.claim { margin-top: 2.5em; } .statement { font-style: italic; }
"""


def anchor(*parts) -> str:
    """An id attribute from parts: letters, digits, '-' and '_' only (model names hold ':' and '/')."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", "-".join(str(p) for p in parts)).strip("-")


def cell_anchor(record: dict) -> str:
    return anchor("cell", record["claim"], record["model"], f"L{record['layer']}")


def render_html(data: dict, directory: Path, *, forest: str | None = None, depth: dict | None = None) -> str:
    """The page for a results.json document; `forest` and `depth` ({claim: path}) are figures drawn at finalize."""
    run, records = data["run"], data["records"]
    body = [_header(data), _counts(records), _matrix(records)]
    if forest:
        body.append(f"<h2>Effect sizes</h2>{_image(directory, forest, 'effect sizes of every cell')}")
    by_claim: dict[str, list[dict]] = {}
    for r in records:
        by_claim.setdefault(r["claim"], []).append(r)
    for claim in sorted(by_claim, key=_natural):
        body.append(_claim_section(claim, by_claim[claim], directory, (depth or {}).get(claim)))
    meta = esc(json.dumps({k: v for k, v in run.items() if k != "prompts"}, indent=2))
    body.append(f"<details><summary>run metadata (results.json's run, without the prompt windows)</summary>"
                f"<pre>{meta}</pre></details>")
    return (f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>mcis-claims report: {esc(', '.join(run.get('models') or []) or 'run')}</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _header(data: dict) -> str:
    run = data["run"]
    config = run.get("config") or {}
    rows = []
    models = run.get("models") or {}
    for name in config.get("models") or list(models):  # in --models order
        meta = models.get(name) if isinstance(models.get(name), dict) else {}
        rows.append(("model", f"{esc(name)}<span style='color:#57606a'>{esc(_provenance(meta))}</span>"))
    if run.get("command"):
        rows.append(("command", f"<code>{esc(run['command'])}</code>"))
    settings = ", ".join(f"{k} {v}" for k, v in config.items()
                         if k in ("layers", "n_prompts", "n_fit", "n_directions", "kl_threshold", "corpus",
                                  "prompt_length", "n_resamples", "device", "sae", "sae_layers") and v is not None)
    rows += [("seed", esc(str(run.get("seed")))),
             ("profile", esc(str(config.get("profile", "?"))) + ("" if config.get("comparable", True)
                                                                 else " (not comparable)")),
             ("family", f"M = {esc(str(run.get('family')))} claim cells: each interval at 1 − 2α/M, "
                        f"p_adj = min(1, M·p)"),
             ("rule", esc(rule_line(config, data["records"]))),
             ("config", esc(settings))]
    corpus = run.get("corpus")
    if isinstance(corpus, dict):
        rows.append(("corpus", esc(f"{corpus.get('name', '?')}{_provenance(corpus)}")))
    versions = run.get("versions") or {}
    if versions:
        rows.append(("versions", esc(", ".join(f"{k} {v}" for k, v in versions.items() if v is not None))))
    rows.append(("time", esc(f"{_fmt_seconds(run.get('wall_time_s'))} · started {run.get('started')} · "
                             f"finished {run.get('finished')}")))
    rows.append(("results_hash", f"<code>{esc(str(data.get('results_hash')))}</code>"))
    banners = []
    if not config.get("comparable", True):
        banners.append(f"<p class='banner smoke'>SMOKE RUN ({esc(str(config.get('profile')))} profile): its "
                       f"numbers are NOT comparable with a default run or a baseline.</p>")
    if run.get("complete") is False:
        banners.append(f"<p class='banner incomplete'>INCOMPLETE (complete: false): {esc(incomplete_line(run))}</p>")
    facts = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in rows)
    return f"<h1>mcis-claims report</h1>{''.join(banners)}<dl class='run'>{facts}</dl>"


def _counts(records: list[dict]) -> str:
    counts = [(v, sum(r["verdict"] == v for r in records)) for v in VERDICTS]
    return "<p>" + " · ".join(f"<span class='{v}'>{n} {v}</span>" for v, n in counts) + \
        " (negligible + reversed = refuted)</p>"


def _matrix(records: list[dict]) -> str:
    """Claims down, (model, layer) across; each cell its verdict and effect, linking to its article."""
    columns = sorted({(r["model"], r["layer"]) for r in records},
                     key=lambda c: (list(dict.fromkeys(r["model"] for r in records)).index(c[0]), c[1]))
    cells = {(r["claim"], r["model"], r["layer"]): r for r in records}
    claims = sorted({r["claim"] for r in records}, key=_natural)
    titles = {r["claim"]: (r.get("spec") or {}).get("title") or "" for r in records}
    models = list(dict.fromkeys(m for m, _ in columns))
    head = "<tr><th rowspan='2'>claim</th>" + "".join(
        f"<th colspan='{sum(1 for m, _ in columns if m == model)}'>{esc(model)}</th>" for model in models) + "</tr>"
    head += "<tr>" + "".join(f"<th>{'toy' if layer < 0 else 'L' + str(layer)}</th>" for _, layer in columns) + "</tr>"
    rows = []
    for claim in claims:
        tds = []
        for model, layer in columns:
            r = cells.get((claim, model, layer))
            if r is None:
                tds.append("<td></td>")
                continue
            tds.append(f"<td class='{esc(r['verdict'])}'><a href='#{cell_anchor(r)}'>{esc(r['verdict'])}<br>"
                       f"{esc(_effect_str(r.get('effect') or {}))}</a></td>")
        rows.append(f"<tr><td><a href='#{anchor('claim', claim)}'>{esc(claim)}</a> "
                    f"<span style='color:#57606a'>{esc(titles[claim])}</span></td>{''.join(tds)}</tr>")
    return f"<h2>Claims × models × layers</h2><table class='matrix'>{head}{''.join(rows)}</table>"


def _claim_section(claim: str, records: list[dict], directory: Path, depth: str | None) -> str:
    spec = records[0].get("spec") or {}
    parts = [f"<section class='claim' id='{anchor('claim', claim)}'><h2>{esc(claim)}: {esc(spec.get('title', ''))}</h2>"]
    if spec.get("statement"):
        parts.append(f"<p class='statement'>{esc(spec['statement'])}</p>")
    facts = [("H0", spec.get("null_hypothesis")), ("statistic", spec.get("statistic")),
             ("effect", spec.get("effect")), ("SESOI", spec.get("sesoi")), ("alpha", spec.get("alpha")),
             ("source", spec.get("source"))]
    parts.append("<dl class='run'>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(str(v))}</dd>" for k, v in facts
                                             if v is not None) + "</dl>")
    if depth:
        parts.append(_image(directory, depth, f"{claim}: effect against layer"))
    for r in sorted(records, key=lambda r: (r["model"], r["layer"])):
        parts.append(_cell_article(r, directory))
    return "".join(parts) + "</section>"


def _cell_article(r: dict, directory: Path) -> str:
    details = r.get("details") or {}
    where = "toy models" if r["layer"] < 0 else f"{r.get('site', '')}"
    parts = [f"<article id='{cell_anchor(r)}'><h3>{esc(r['claim'])} · {esc(r['model'])} · {esc(where)} — "
             f"<span class='{esc(r['verdict'])}'>{esc(r['verdict'])}</span></h3>",
             f"<p>{esc(r.get('effect', {}).get('name', ''))} {esc(_effect_str(r.get('effect') or {}))}; "
             f"p {esc(_fmt_p(r.get('p_value')))}, p_adj {esc(_fmt_p(r.get('p_adjusted')))}, n {esc(str(r.get('n')))}</p>",
             f"<p>{esc(r.get('reason') or '')}</p>"]
    for key, alt in (("figure", "read-out curves"), ("unit_figure", "per-unit values (the tested quantity)")):
        if r.get(key):
            parts.append(_image(directory, r[key], f"{r['claim']} {r['model']} L{r['layer']}: {alt}"))
    if details.get("reproduce"):
        parts.append(f"<p>Reproduce: <code>{esc(details['reproduce'])}</code></p>")
    shown = esc(json.dumps(details, indent=2, default=str))
    parts.append(f"<details><summary>details</summary><pre>{shown}</pre></details></article>")
    return "".join(parts)


def _image(directory: Path, relative: str, alt: str) -> str:
    path = Path(directory) / relative
    if not path.is_file():
        return f"<p>(figure {esc(relative)} missing)</p>"
    encoded = base64.b64encode(path.read_bytes()).decode()
    return f"<figure><img alt='{esc(alt)}' src='data:image/png;base64,{encoded}'></figure>"


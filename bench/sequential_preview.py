"""What the sequential rule would decide on a finished run, from its logged per-unit values.

    .venv/bin/python bench/sequential_preview.py reports/latest        # a run made with --fixed-n --log-samples

For every cell decided by the standard rule, the looks of `SequentialPlan.doubling(n)` are
judged on the first n_k units of the logged sample (nested prefixes), and the table says at which
look the cell would stop, with which verdict, beside the fixed rule's verdict on all n (which must
be the recorded one: a check that the preview reads the sample as the run did). Cells the fixed
rule does not reproduce from their sample alone (C4's three-step depth rule, say) are listed and
skipped. `pytest claims/` (sequential looks, the default) judges the same prefixes (its draws are
made for every base prompt and cut to the look), so this predicts its stops, except where a claim draws per look
(C9's measured read-offs) or splits its bases by a look's own data (C6's margin halves).
"""
from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np

from mcis_claims import load_results, stats
from mcis_claims.sequential import SequentialPlan, decide_sequential
from mcis_claims.verdict import ClaimSpec, decide


def estimate_from_units(spec: ClaimSpec, units, n: int):
    """The claim's estimate on the first n logged units (bounds and censoring as logged)."""
    u = units.iloc[:n]
    d = u["d"].to_numpy(dtype=float)
    ca, cb = u["censored_a"].to_numpy(bool), u["censored_b"].to_numpy(bool)
    d = np.where(ca & cb, 0.0, d)  # both arms censored: both bounds open, as logged
    documents = u["document"].to_numpy() if "document" in u else None
    common = dict(alternative=spec.alternative if spec.kind != "equivalence" else "two-sided",
                  confidence_level=spec.ci_level, n_resamples=200, random_state=0, censored_a=ca, censored_b=cb,
                  documents=documents)
    if spec.is_ratio:
        return stats.paired_log_ratio(np.exp(d), np.ones_like(d), **common)
    return stats.paired_difference(d, np.zeros_like(d), **common)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a report directory written with --fixed-n --log-samples")
    parser.add_argument("--first", type=int, default=32, help="base prompts at the first look (default 32)")
    args = parser.parse_args(argv)
    # a small prefix of a heavily censored cell has descriptive summaries of empty slices: not an error here
    warnings.filterwarnings("ignore", message="(Mean of empty slice|invalid value encountered)", category=RuntimeWarning)
    records, samples = load_results(args.run)
    if samples.empty:
        print(f"{args.run}: no per-unit samples; rerun with --fixed-n --log-samples", file=sys.stderr)
        return 2
    stopped, skipped, rows = {}, [], []
    for _, record in records.iterrows():
        units = samples[(samples.claim == record.claim) & (samples.model == record.model)
                        & (samples.layer == record.layer)].sort_values("unit")
        if units.empty or not record.family:
            skipped.append(f"{record.claim} L{record.layer}: no sample")
            continue
        spec = ClaimSpec(**record.spec)
        family, n = int(record.family), len(units)
        fixed = decide(spec, estimate_from_units(spec, units, n), family=family).verdict
        if fixed != record.verdict:
            skipped.append(f"{record.claim} L{record.layer}: recorded {record.verdict}, the sample alone gives {fixed}")
            continue
        plan = SequentialPlan.doubling(n, first=min(args.first, n))
        result = decide_sequential(spec, lambda k: estimate_from_units(spec, units, k), family=family, plan=plan)
        stopped[result.n] = stopped.get(result.n, 0) + 1
        rows.append((record.claim, record.model, record.layer, fixed, result.decision.verdict, result.n, n))
    print(f"{'claim':<6} {'model':<16} {'layer':>5}  {'fixed (all n)':<13} {'sequential':<13} {'stopped at':>10}")
    for claim, model, layer, fixed, seq, at, n in rows:
        flag = "" if seq == fixed else "  <- changed"
        print(f"{claim:<6} {model:<16} {layer:>5}  {fixed:<13} {seq:<13} {at:>6} / {n}{flag}")
    units_fixed = sum(r[6] for r in rows)
    units_seq = sum(r[5] for r in rows)
    print(f"\n{len(rows)} cells: stopped at {dict(sorted(stopped.items()))}; verdicts changed: "
          f"{sum(r[3] != r[4] for r in rows)}; base prompts judged {units_seq} of {units_fixed} "
          f"({units_seq / max(units_fixed, 1):.0%})")
    for line in skipped:
        print(f"skipped: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

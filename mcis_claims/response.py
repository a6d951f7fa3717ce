"""The blocks' response to a perturbation, ||Δh_l - r u||: what the blocks add, without the skip path's r u.

The skip path carries a perturbation r u unchanged to every later layer, so the raw change
||Δh_l|| is about r for any base; the response is what tells bases apart. C7 reads the radius
at which the response at the final residual stream (after the last block, before the final
norm) first reaches a threshold; C8 reads its size per unit radius at one radius (damping).
The raw form stays beside them, labelled, as each claim's secondary.
"""
from __future__ import annotations

import numpy as np

from . import readouts, stats


def final_response(sweep) -> np.ndarray:
    """(n, K, S) the blocks' response at the final residual stream, float64."""
    return sweep.result.response_l2[..., -1].double().numpy()


def median_clean_final_norm(sweep) -> float:
    """The median clean final-residual norm of the sweep's bases (after the last block, before the final norm)."""
    return float(sweep.result.clean_final_norm.double().median())


def radius_to_final_response(sweep, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Per base, where the final response first reaches `threshold`: -> (radius, censored), each (n,).

    The median over the K directions, censored as `readouts.median_crossing` (a curve that
    never gets there is a lower bound).
    """
    return _median_radius(final_response(sweep), sweep.radii_rel, threshold)


def per_base_final_response(sweep) -> np.ndarray:
    """(n, S) the median final response over each base's K directions, for figures."""
    return np.median(final_response(sweep), axis=1)


def story1_details(cell, spec, kind, sweeps: dict, radius: dict, *, threshold: float, fraction: float) -> dict:
    """C7's record: the threshold rule, the radii, and what is reported beside the verdict (not judged).

    sweeps: {"real": KindSweep, "gaussian": KindSweep}; radius: the same keys -> (radius, censored)
    of `radius_to_final_response`. Beside it: the raw ||Δh_final|| form at the same threshold
    (labelled: it carries the skip term), C1's ratio on KL, and the curve shape at both read-outs.
    """
    real, gaussian = sweeps["real"], sweeps["gaussian"]
    (r_real, censored_real), (r_gauss, censored_gauss) = radius["real"], radius["gaussian"]
    raw = {k: _median_radius(s.result.final_l2.double().numpy(), s.radii_rel, threshold) for k, s in sweeps.items()}
    raw_form = _ratio_beside(cell, spec, raw["real"], raw["gaussian"])
    kl_threshold = cell.config.kl_threshold
    at_logits = _ratio_beside(cell, spec, real.per_base_radius(kl_threshold), gaussian.per_base_radius(kl_threshold))
    curves = {("response", k): per_base_final_response(s) for k, s in sweeps.items()}  # (n, S) per base
    curves.update({("kl", "real"): real.per_base_curve(), ("kl", "gaussian"): gaussian.per_base_curve()})
    shape = {f"{readout}|{base}": float(np.nanmedian(readouts.sharpness(c))) for (readout, base), c in curves.items()}
    return {
        "directions": repr(kind),
        "readout": "the blocks' response ||Δh_final - r u|| after the last block, before the final norm",
        "threshold": threshold,
        "threshold_rule": f"{fraction:g} x median clean final-residual norm of the real bases",
        "median_clean_final_norm": median_clean_final_norm(real),
        "raw_final_l2_form": {"note": "labelled secondary: ||Δh_final|| includes the skip term r u, so its "
                                      "ratio tends to 1 by construction at late layers",
                              "estimate": raw_form.to_dict()},
        "median_radius_real": float(np.median(r_real)),
        "median_radius_gaussian": float(np.median(r_gauss)),
        "censored_fraction_real": float(censored_real.mean()),
        "censored_fraction_gaussian": float(censored_gauss.mean()),
        "at_logits_kl_ratio": at_logits.to_dict(),
        "at_logits_kl_threshold_nats": kl_threshold,
        "median_sharpness_on_radius_grid": shape,
        "sharpness_note": "max step of curve / curve at the largest radius, times steps; on the geometric "
                          "radius grid, not an interpolation path",
        "radius_unit": cell.radius_unit,
    }


def profile_per_radius(sweep, index: int, radius_abs: float) -> np.ndarray:
    """(n, N - L) per base: the response ||Δh_l - r u|| / r after each block l = L..N-1, at grid radius `index`.

    The mean over the K directions; the last column is the final residual stream.
    """
    return (sweep.result.response_l2[:, :, index, :].double() / radius_abs).mean(1).numpy()


def raw_final_per_radius(sweep, index: int, radius_abs: float) -> np.ndarray:
    """(n,) per base: the raw ||Δh_final|| / r at grid radius `index` (skip term included), mean over K."""
    return (sweep.result.final_l2[:, :, index].double() / radius_abs).mean(1).numpy()


def damping_details(cell, spec, kind, arms: dict, directional: dict, profile: dict, *, index: int, ends,
                    radius_rel: float, radius_abs: float) -> dict:
    """C8's record: the radius rule, KL and the response there, and the first-wave direction form beside it.

    arms: {"real_base": KindSweep, "gaussian_base": KindSweep}; ends: each arm's plateau end
    (`inside_plateaus`); profile: the same keys -> `profile_per_radius`. directional: {"real_other",
    "cov_random_mixture", "real_mixture"} -> KindSweep on real bases, each compared with
    cov_random_mixture on the raw ||Δh_final|| / r (labelled: it carries the skip term).
    """
    raw_final = {name: raw_final_per_radius(s, index, radius_abs) for name, s in directional.items()}
    seed = cell.config.cell_seed(spec.id, cell.model_name, cell.layer)
    old_form = {name: stats.paired_log_ratio(raw_final[name], raw_final["cov_random_mixture"], alternative="less",
                                             confidence_level=spec.ci_level, sesoi=spec.sesoi,
                                             n_resamples=cell.config.n_resamples, random_state=seed).to_dict()
                for name in ("real_other", "real_mixture")}
    return {
        "readout": "the blocks' response ||Δh_l - r u|| / r after block l (skip term removed); "
                   "primary at the last block",
        "directions": repr(kind),
        "radius_rule": "largest grid radius where the median KL over bases of both arms is below the threshold",
        "radius_rel": radius_rel, "radius_abs": radius_abs,
        "plateau_end_radius": {name: float(s.radii_rel[max(e, 0)]) for (name, s), e in zip(arms.items(), ends)},
        "median_kl_at_radius_nats": {name: float(np.median(s.per_base_curve()[:, index])) for name, s in arms.items()},
        "median_response_final": {name: float(np.median(p[:, -1])) for name, p in profile.items()},
        "median_profile": {name: np.median(p, axis=0).round(4).tolist() for name, p in profile.items()},
        "direction_form_raw_final_l2": {
            "note": "labelled secondary (the first-wave form): directions on real bases, raw ||Δh_final|| / r, "
                    "which carries the skip term",
            **old_form},
        "radius_unit": cell.radius_unit,
    }


def _median_radius(curves, radii_rel, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(n, K, S) curves -> (radius, censored), each (n,): the median crossing over the K directions."""
    return readouts.median_crossing(readouts.radius_at_threshold(curves, radii_rel, threshold))


def _ratio_beside(cell, spec, a, b):
    """A ratio reported beside the verdict: a / b one-sided greater, at the spec's level, no SESOI, each base a unit.

    a, b: (radius (n,), censored (n,)).
    """
    (r_a, censored_a), (r_b, censored_b) = a, b
    return stats.paired_log_ratio(r_a, r_b, alternative="greater", confidence_level=spec.ci_level,
                                  censored_a=censored_a, censored_b=censored_b, n_resamples=cell.config.n_resamples,
                                  random_state=cell.config.cell_seed(spec.id, cell.model_name, cell.layer))

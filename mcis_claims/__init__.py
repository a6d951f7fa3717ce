"""mcis-claims: falsifiable claims about transformer internals, judged as statistical tests.

Notebook API:
    model = mcis_claims.load_model("smollm2-135m")
    result = mcis_claims.sweep(model, layer, tokens, directions, radii)   # result.kl is (n, S)

Claim files import from here only. Names are resolved on first use, so importing the
package (as the pytest plugin does on every run) does not import scipy or matplotlib.
"""
from importlib import import_module

_EXPORTS = {
    "load_model": ".models", "LoadedModel": ".models",
    "sweep": ".engine", "sweep_points": ".engine", "sweep_naive": ".engine", "SweepResult": ".engine",
    "resid_pre": ".engine", "optimize_directions": ".optimize",
    "ClaimSpec": ".verdict", "CurveSet": ".records", "claim": ".plugin", "McisError": ".errors",
    "directions": ".directions", "readouts": ".readouts", "stats": ".stats", "secondary": ".secondary", "inside_plateaus": ".cell",
    "lp_fit": ".lp_fit", "load_results": ".samples",
    "sae": ".sae", "sae_training": ".sae_training", "synthetic": ".synthetic",
    "optima": ".optima", "flips": ".flips", "depth": ".depth", "interpolation": ".interpolation",
    "margins": ".margins", "response": ".response", "readoff": ".readoff",
    "prompts_from_text": ".prompts", "sample_prompts": ".prompts", "load_corpus": ".prompts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mcis_claims' has no attribute {name!r}")
    module = import_module(_EXPORTS[name], __name__)
    value = module if module.__name__.endswith("." + name) else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return __all__

"""Run settings: what a run of `pytest claims/` will do, resolved once.

Run size is a profile (as Hypothesis' `register_profile`): `smoke` is for CI and
quick looks and is labelled "not comparable" in reports; `default` is what
`pytest claims/` runs; `full` is for papers. Explicit options override a profile.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .errors import InputError

# The defaults of models.py, prompts.py and activations.py, spelled out here (a test checks they
# agree) so that this module, and with it every option check, loads without torch: a wrong
# option fails before the seconds that importing torch and transformers takes.
EMBEDDED = "smollm2-135m"  # models.EMBEDDED
DEFAULT_CORPUS = "lee"  # prompts.DEFAULT_CORPUS
DEFAULT_LENGTH = 10  # prompts.DEFAULT_LENGTH
MIN_FIT_PROMPTS = 1000  # activations.MIN_FIT_PROMPTS


@dataclass(frozen=True)
class RunConfig:
    models: tuple[str, ...] = (EMBEDDED,)
    layers: str | None = None  # None -> sites.default_layers
    profile: str = "default"
    n_prompts: int = 128  # base prompts per cell (the unit of analysis)
    n_fit: int = 1000  # prompts for the Gaussian fit and the real-activation pool
    n_directions: int = 2  # directions per kind per base prompt
    radii: tuple[float, ...] = field(default_factory=lambda: default_radii())  # units of median norm
    kl_threshold: float = 0.1  # nats
    seed: int = 0
    corpus: str = DEFAULT_CORPUS
    prompt_length: int = DEFAULT_LENGTH
    n_resamples: int = 9999
    report_dir: str | None = None
    sae: str | None = None  # a SAELens-format SAE directory for C10; None -> the default trained one
    sae_layers: str = "1"  # layers whose default SAEs C10 trains (once, cached) when --sae is not given
    device: str = "cpu"  # where the models run (cpu, cuda, cuda:<i>, auto); results come back on the CPU
    sequential: bool = True  # judge each cell at growing numbers of base prompts, stop once settled (looks.py)
    first_look: int = 32  # base prompts at the first sequential look

    def __post_init__(self):
        """Every check that needs no model runs here, so a wrong option fails in seconds (exit 4)."""
        if self.n_prompts < 8:
            raise InputError(f"--n-prompts {self.n_prompts}: need at least 8 base prompts for a paired test")
        if self.n_fit < MIN_FIT_PROMPTS:
            raise InputError(f"--n-fit {self.n_fit}: the Gaussian fit needs at least {MIN_FIT_PROMPTS} prompts "
                             f"(a full-rank covariance); use --n-fit {MIN_FIT_PROMPTS} or more")
        if self.n_directions < 1:
            raise InputError(f"--n-directions {self.n_directions}: need at least 1")
        if not (math.isfinite(self.kl_threshold) and self.kl_threshold > 0):  # nan <= 0 is False
            raise InputError(f"--kl-threshold {self.kl_threshold}: must be a finite positive number of nats "
                             f"(default 0.1)")
        if not isinstance(self.first_look, int) or self.first_look < 8:
            raise InputError(f"--first-look {self.first_look}: a look needs at least 8 base prompts")
        if self.prompt_length < 2:
            raise InputError(f"--prompt-length {self.prompt_length}: must be at least 2 tokens")
        for option, value in (("--layers", self.layers), ("--sae-layers", self.sae_layers), ("--sae", self.sae),
                              ("--corpus", self.corpus)):
            if value is not None and not str(value).strip(" ,"):  # '' must not quietly mean "the default"
                raise InputError(f"--{option.lstrip('-')} {value!r}: empty; give a value or leave the option out")
        if self.corpus not in ("lee", "pydoc") and not self.corpus.startswith("hf:"):
            from pathlib import Path

            if not Path(self.corpus).expanduser().exists():
                raise InputError(f"--corpus {self.corpus}: no such file or folder; use lee, pydoc, a text file, "
                                 f"a folder of *.txt or hf:<dataset>")
        if str(self.device).strip().lower() != "cpu":  # the CPU needs no check, and no torch import
            from .models import resolve_device

            resolve_device(self.device)  # a missing or unknown device fails before anything loads

    @property
    def comparable(self) -> bool:
        return self.profile != "smoke"

    def to_meta(self) -> dict:
        meta = asdict(self)
        meta["radii"] = list(self.radii)
        meta["comparable"] = self.comparable
        return meta

    def cell_seed(self, *parts: object) -> int:
        """A seed for one piece of work, from the run seed and stable names (not collection order)."""
        text = "|".join([str(self.seed), *map(str, parts)])
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & (2**63 - 1)


def default_radii(steps: int = 20, smallest: float = 0.02, largest: float = 4.0) -> tuple[float, ...]:
    """0 plus a geometric schedule, in units of the site's median activation norm.

    Geometric spacing gives every radius the same relative resolution, which is what a
    log-ratio of radii needs; 4x the median norm is well past where the output changes.
    """
    return (0.0, *np.geomspace(smallest, largest, steps).round(6).tolist())


PROFILES = {
    "smoke": dict(n_prompts=24, n_directions=1, n_resamples=999),
    "default": dict(),
    "full": dict(n_prompts=512, n_directions=4, n_fit=2000),
}


def make_config(profile: str = "default", **overrides) -> RunConfig:
    if profile not in PROFILES:
        raise InputError(f"--profile {profile}: choose one of {', '.join(PROFILES)}")
    settings = {**PROFILES[profile], **{k: v for k, v in overrides.items() if v is not None}}
    return replace(RunConfig(profile=profile), **settings)

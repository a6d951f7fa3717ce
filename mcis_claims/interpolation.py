"""Real-to-real interpolation paths in a trained model and its controls (C12; Janiak et al. 2024).

For each base prompt, x = its real activation at the site and b = the real activation of another
prompt (drawn once from the fit pool, the same prompt for every model), each model's OWN
activations of those prompts; the path is x + t (b - x), t in linspace(0, 1, steps). Sharpness
(`readouts.sharpness`) says whether the output changes in a step or smoothly along it.

    paths = real_to_real_paths(cell, ["random:smollm2-135m@0"], steps=21)
    paths.sharpness()["kl"]["trained"]   # (n,) per base prompt
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .directions import real_other_path
from .engine import first_prompts, grow_prompts, resid_pre, sweep_points
from .errors import InputError
from .readouts import sharpness

READOUTS = (("kl", "kl"), ("normed_residual", "normed_final_l2"))  # record name, SweepResult field


def underlying(name: str) -> str:
    """The trained model a control name stands for: 'shuffled:smollm2-135m@1' -> 'smollm2-135m'."""
    from .models import split_control

    prefix = name.split(":", 1)[0]
    return split_control(name)[0] if prefix in ("random", "shuffled") else name


@dataclass(frozen=True)
class InterpolationPaths:
    """The same paths swept in the trained model ("trained") and each control: read-outs (n, steps)."""

    t: np.ndarray  # (steps,) in [0, 1]
    results: dict  # "trained" | control name -> SweepResult
    controls: list  # the control names, in order

    def sharpness(self) -> dict:
        """read-out ("kl" | "normed_residual") -> model -> (n,) sharpness per base prompt."""
        return {readout: {k: sharpness(getattr(r, field)) for k, r in self.results.items()}
                for readout, field in READOUTS}

    def control_median(self, sharp: dict) -> dict:
        """read-out -> (n,): per base prompt, the median sharpness over the controls (their seeds)."""
        return {readout: np.nanmedian(np.stack([s[name] for name in self.controls]), axis=0)
                for readout, s in sharp.items()}

    def ratio_per_control(self, sharp: dict) -> dict:
        """control -> read-out -> median over base prompts of sharpness trained / control."""
        return {name: {readout: float(np.nanmedian(s["trained"] / s[name])) for readout, s in sharp.items()}
                for name in self.controls}

    def degenerate_fraction(self) -> float:
        """The largest share, over the models, of paths whose KL at the end d(1) is 0 (sharpness undefined)."""
        return max(float((r.kl[:, -1] <= 0).float().mean()) for r in self.results.values())

    def normalised_kl(self, label: str) -> dict:
        """{"trained", label} -> (n, steps) d(t) / d(1) of the KL; the controls' as their median over controls."""
        curves = {"trained": self.results["trained"].kl,
                  label: torch.stack([self.results[c].kl for c in self.controls]).median(0).values}
        return {k: (v / v[:, -1:]).numpy() for k, v in curves.items()}


def real_to_real_paths(cell, control_names, *, steps: int, tag: str = "C12") -> InterpolationPaths:
    """Sweep the paths in the cell's model and in each control (each model's own end activations).

    The other prompt of each path is one draw from the fit pool, `cell.generator(tag, "targets")`, made
    for every base prompt (a sequential look uses the first n); a control must share the trained
    model's tokenizer. Each model's paths are cached for the run, and grown by a later look.
    """
    tokens = cell.prompts.tokens
    target = torch.randint(cell.stats.n_fit, (cell.config.n_prompts,), generator=cell.generator(tag, "targets"))
    t = torch.linspace(0, 1, steps)
    results = {"trained": _path(cell, cell.model_name, lambda rows: cell.stats.activations[target[rows]].float(),
                                t, tag)}
    for name in control_names:
        model = cell.workspace.model(name)
        vocab = model.stack.unembed.shape[0]
        if int(tokens.max()) >= vocab:
            raise InputError(f"{name} has a vocabulary of {vocab}; the base prompts use ids up to "
                             f"{int(tokens.max())}: the control must share the tokenizer")
        ends = lambda rows, model=model: resid_pre(model, cell.layer, cell.fit_tokens[target[rows]])[:, -1]
        results[name] = _path(cell, name, ends, t, tag)
    return InterpolationPaths(t=t.numpy(), results=results, controls=list(control_names))


def _path(cell, model_name, ends, t, tag):
    """The interpolation paths of the cell's base prompts in one model, cached for the run (C12 and
    C12b share the trained model's) and grown when a later sequential look has more prompts.

    ends(rows): (m, d) the model's own end activations of those base prompts, computed only for
    prompts whose paths are not cached yet.
    """
    def sweep_rows(rows):
        end_points = ends(rows)
        return sweep_points(cell.workspace.model(model_name), cell.layer, cell.prompts.tokens[rows],
                            lambda x: real_other_path(x, end_points, t))

    def grow(have):  # only the prompts `have` lacks: rows bitwise those of one sweep
        return grow_prompts(have, cell.n, len(t), sweep_rows)

    return first_prompts(cell.workspace.grown((f"{tag} path", model_name, cell.model_name, cell.layer), cell.n, grow),
                         cell.n)

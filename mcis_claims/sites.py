"""Site names and layer selectors: the one place that parses them.

A site is the TransformerLens address `blocks.{L}.hook_resid_pre`: the residual
stream entering block L (for L = 1, after block 0, the published write site).
The same string is used in options, cache keys, JSON and test ids. Hook names that
others write (an SAE's cfg.json) may use the alias `blocks.{L-1}.hook_resid_post`;
`layer_of` maps both.
"""
from __future__ import annotations

import re

from .errors import SiteError

RESID_PRE = "blocks.{layer}.hook_resid_pre"
_SITE = re.compile(r"blocks\.(\d+)\.hook_resid_pre")
_RESIDUAL = re.compile(r"blocks\.(\d+)\.hook_resid_(pre|post)")  # a hook name that may be an alias


def site_name(layer: int) -> str:
    return RESID_PRE.format(layer=layer)


def parse_site(site: str) -> int:
    """`blocks.3.hook_resid_pre` -> 3."""
    match = _SITE.fullmatch(site.strip())
    if not match:
        raise SiteError(f"site {site!r} is not supported; use blocks.<L>.hook_resid_pre")
    return int(match.group(1))


def layer_of(hook_name: str) -> int:
    """The L whose `blocks.L.hook_resid_pre` a hook name reads: the site itself, or its alias
    `blocks.{L-1}.hook_resid_post` (the same tensor), as an SAE's cfg.json may name it.

    >>> layer_of("blocks.2.hook_resid_post")
    3
    """
    match = _RESIDUAL.fullmatch(hook_name.strip())
    if not match:
        raise SiteError(f"hook {hook_name!r} is not a residual-stream site; use blocks.<L>.hook_resid_pre "
                        f"(or blocks.<L-1>.hook_resid_post)")
    return int(match.group(1)) + (match.group(2) == "post")


def default_layers(n_layers: int) -> list[int]:
    """An early, a middle and a late layer: 1 (the published site), n//2, n-1."""
    return sorted({min(1, n_layers - 1), n_layers // 2, n_layers - 1})


def default_depth_layers(n_layers: int) -> list[int]:
    """The layers a depth claim (C4) profiles by default: 1, n/4, n/2, 3n/4, n-1.

    Three layers give a profile whose rank trend cannot be significant (the smallest possible
    Spearman p is about 0.33); five give a shape worth reading. Fewer on a shallow model.
    """
    early = min(1, n_layers - 1)
    return sorted({early, max(early, n_layers // 4), n_layers // 2, max(early, (3 * n_layers) // 4), n_layers - 1})


def check_layer(layer: int, n_layers: int, model: str = "the model") -> int:
    if not isinstance(layer, int) or isinstance(layer, bool) or not 0 <= layer < n_layers:
        raise SiteError(
            f"layer {layer!r}: {model} has blocks 0-{n_layers - 1}; "
            f"try --layers {','.join(map(str, default_layers(n_layers)))} or --layers all"
        )
    return layer


def select_layers(spec: str | None, n_layers: int, model: str = "the model", *, depth: bool = False) -> list[int]:
    """Parse a --layers value: `1,15,29`, `all`, `every:3`, `default` (or None).

    `depth`: the grid of a depth claim, whose default is `default_depth_layers`.
    """
    if spec is None or spec.strip() == "default":
        return default_depth_layers(n_layers) if depth else default_layers(n_layers)
    if not spec.strip(" ,"):  # an empty value is a mistake, not a request for the default
        raise SiteError(f"--layers {spec!r}: no layer given; use e.g. 1,15,29, all, every:3 or default")
    spec = spec.strip()
    if spec == "all":
        return list(range(n_layers))
    if spec.startswith("every:"):
        step = spec[len("every:"):]
        if not step.isdigit() or int(step) < 1:
            raise SiteError(f"--layers {spec}: expected every:<positive integer>, e.g. every:3")
        return list(range(0, n_layers, int(step)))
    layers = []
    for part in spec.split(","):
        part = part.strip()
        if not re.fullmatch(r"-?\d+", part):
            raise SiteError(f"--layers {spec}: {part!r} is not a layer number; use e.g. 1,15,29, all or every:3")
        layers.append(check_layer(int(part), n_layers, model))
    return sorted(set(layers))

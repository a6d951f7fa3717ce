"""The command line that reruns one cell and gets its record back (each record's `reproduce`).

A cell's numbers depend on the run's options (prompts, fit, corpus, seed, ...) and on the family M
it was judged in (the whole grid, counted before -k/-m). A line that carries only the node id
reruns at the defaults and judges in a family of one test function: other numbers. So the line
carries every option that changes a number and differs from the profile's value, the seed, and
`--family M`, shell-quoted so that it pastes into a shell as it is.
"""
from __future__ import annotations

import os
import shlex

from .config import RunConfig, make_config

GROUP_PREFIX = "mcis-"  # xdist_group names (parallel.py); xdist appends "@<group>" to the node id

# RunConfig field -> option, for every option that changes a number (--report-dir does not)
NUMBER_OPTIONS = (
    ("models", "--models"), ("layers", "--layers"), ("n_prompts", "--n-prompts"), ("n_fit", "--n-fit"),
    ("n_directions", "--n-directions"), ("kl_threshold", "--kl-threshold"), ("corpus", "--corpus"),
    ("prompt_length", "--prompt-length"), ("sae", "--sae"), ("sae_layers", "--sae-layers"), ("device", "--device"),
)


def reproduce_command(nodeid: str, run: RunConfig, family: int) -> str:
    """`pytest '<nodeid>' [--profile P] [options that differ from P's] --seed S --family M`.

    >>> from mcis_claims.config import make_config
    >>> reproduce_command("claims/t.py::test_c1[m-blocks.1.hook_resid_pre]", make_config(n_prompts=32), 48)
    "pytest 'claims/t.py::test_c1[m-blocks.1.hook_resid_pre]' --n-prompts 32 --seed 0 --family 48"
    """
    defaults = make_config(run.profile)
    args = ["pytest", nodeid]
    if run.profile != "default":
        args += ["--profile", run.profile]
    for field, option in NUMBER_OPTIONS:
        value = getattr(run, field)
        if value is not None and value != getattr(defaults, field):
            args += [option, ",".join(value) if isinstance(value, tuple) else str(value)]
    if not run.sequential:
        args.append("--fixed-n")
    elif run.first_look != defaults.first_look:
        args += ["--first-look", str(run.first_look)]
    return shlex.join([*args, "--seed", str(run.seed), "--family", str(family)])


def invocation(args) -> str:
    """The run's own command, shell-quoted (`-k 'c1_ or c2_'` stays one argument)."""
    return shlex.join(["pytest", *map(str, args)])


def invocation_nodeid(item) -> str:
    """The item's node id with its file relative to where pytest was started, not to the rootdir
    (they differ when no ini file pins the rootdir), and without xdist's group suffix."""
    nodeid = plain_nodeid(item.nodeid)
    _, sep, rest = nodeid.partition("::")
    if not sep:
        return nodeid
    return f"{os.path.relpath(item.path, item.config.invocation_params.dir)}::{rest}"


def plain_nodeid(nodeid: str) -> str:
    """The node id without xdist's '@<group>' suffix (--dist loadgroup), as a serial run names it."""
    head, sep, tail = nodeid.rpartition("@")
    return head if sep and tail.startswith(GROUP_PREFIX) and "/" not in tail and "::" not in tail else nodeid

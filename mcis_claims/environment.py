"""Versions and provenance recorded in every report, so a number can be traced."""
from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("mcis-claims", "torch", "transformers", "transformer-lens", "gguf", "numpy", "scipy",
            "safetensors", "rich", "matplotlib", "pytest", "hypothesis")


def environment() -> dict:
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["git_sha"] = _git_sha()
    try:
        import torch

        versions["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return versions


def _git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None

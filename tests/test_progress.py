"""Progress shows under pytest's capture, on a terminal only, and nests (progress.py)."""
import io
import os
import pty
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mcis_claims import progress

CLAIMS = Path(__file__).resolve().parents[1] / "claims"


class FakeWriter:
    fullwidth = 100

    def __init__(self):
        self.text = io.StringIO()

    def write(self, text):
        self.text.write(text)

    def flush(self):
        pass


def test_nested_work_adds_a_row_to_the_live_display():
    writer = FakeWriter()
    progress.bind(writer)
    try:
        with progress.stage("fit the site"):
            with progress.progress_bar("sweep inside", 10, "rows") as advance:  # rich allows one live display
                advance(10)
    finally:
        progress.bind(None)
    assert "fit the site" in writer.text.getvalue() and "sweep inside" in writer.text.getvalue()


def _run_on_a_terminal(args, cwd):
    """Run a command with stdout and stderr on a pseudo-terminal; everything it drew."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, cwd=cwd, stdout=follower, stderr=follower, stdin=subprocess.DEVNULL,
                            env={**os.environ, "COLUMNS": "120", "TERM": "xterm"})
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed its end
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=600)
    os.close(leader)
    return proc.returncode, b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_a_run_on_a_terminal_shows_every_stage_and_a_pipe_shows_none(pytester, tiny_model_dir):
    shutil.copy(CLAIMS / "test_c1_plateaus.py", pytester.path)
    args = [sys.executable, "-m", "pytest", "--models", str(tiny_model_dir), "--corpus", "pydoc", "--n-prompts", "12",
            "--n-directions", "1", "--layers", "1", "-p", "mcis_claims.plugin", "-p", "no:cacheprovider",
            "--report-dir", str(pytester.path / "r")]
    code, drawn = _run_on_a_terminal(args, pytester.path)
    assert code in (0, 1), drawn
    for stage in ("load ", "sample 1012 prompt windows", "fit ", "parity check", "sweep "):
        assert stage in drawn, (stage, drawn[-3000:])
    quiet_code, quiet = _run_on_a_terminal([*args, "-q", "-q"], pytester.path)
    assert quiet_code in (0, 1) and "parity check" not in quiet
    piped = subprocess.run(args, cwd=pytester.path, capture_output=True, text=True, timeout=600)
    assert piped.returncode in (0, 1) and "parity check" not in piped.stdout + piped.stderr

"""The README's notebook snippet runs as written (on the embedded model)."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_notebook_snippet_runs_as_written():
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Notebook API"):]
    code = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md (Notebook API)", "exec"), namespace)
    result, tokens = namespace["result"], namespace["tokens"]
    assert tokens.shape[0] == 2 and result.kl.shape == (2, 21)
    assert float(result.kl[:, 0].abs().max()) < 1e-5 and float(result.kl[:, -1].min()) > 0  # r=0 is clean

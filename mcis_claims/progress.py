"""Rich progress bars for long work (sweeps, SAE training).

Drawn on the real stderr and only on a terminal: in logs and CI a bar would break
pytest's progress lines, so there it is a no-op. `around` is entered while the bar
is shown (the plugin passes pytest's capture suspension).
"""
from __future__ import annotations

import sys
from contextlib import contextmanager, nullcontext


@contextmanager
def progress_bar(label: str, total: int, unit: str, *, enabled: bool = True, around=None):
    """Yield `advance(n)`; a transient bar `label [bar] done/total unit elapsed`."""
    from rich.console import Console

    console = Console(file=sys.__stderr__)
    if not (enabled and console.is_terminal):
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with around if around is not None else nullcontext():
        bar = Progress(TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                       TimeElapsedColumn(), console=console, transient=True)
        with bar:
            task = bar.add_task(label, total=total)
            yield lambda n: bar.advance(task, n)

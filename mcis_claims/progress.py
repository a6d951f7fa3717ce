"""Progress for long work: model loading, fits, parity checks, sweeps, SAE training.

Under pytest, output capture redirects the process's stdout and stderr to files, so a bar drawn on
them is never seen. The plugin therefore `bind`s the display to pytest's own terminal writer (the
real terminal) and to a context that suspends capture while a bar is shown. Outside pytest (a
notebook, a script) bars go to stderr when it is a terminal. Nothing is drawn when the output is
not a terminal (logs, CI) or under `-q -q`.

One rich `Progress` is live at a time; work started inside other work (a sweep inside a fit) adds
a row to it instead of opening a second display, which rich refuses.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager, nullcontext

_bound = None  # (console, around) from `bind`: pytest's terminal and its capture suspension
_live = None  # the rich Progress being shown, shared by nested work


class _TerminalFile:
    """A file for rich that writes through pytest's TerminalWriter (which owns the real terminal)."""

    def __init__(self, writer):
        self.writer = writer

    def write(self, text: str) -> int:
        self.writer.write(text)
        return len(text)

    def flush(self) -> None:
        self.writer.flush()

    def isatty(self) -> bool:
        return True


def bind(writer, around=None) -> None:
    """Draw on pytest's terminal `writer`; `around()` is entered while a bar is shown. None unbinds."""
    global _bound
    if writer is None:
        _bound = None
        return
    from rich.console import Console

    _bound = (Console(file=_TerminalFile(writer), force_terminal=True, width=max(60, writer.fullwidth)), around)


def _target():
    if _bound is not None:
        return _bound
    from rich.console import Console

    console = Console(file=sys.__stderr__)
    return (console, None) if console.is_terminal else None


@contextmanager
def progress_bar(label: str, total: float | None, unit: str = "", *, enabled: bool = True):
    """Yield `advance(n)`; a transient row `label [bar] done/total unit elapsed` (a spinner if total is None)."""
    global _live
    target = _target() if enabled else None
    if target is None:
        yield lambda n: None
        return
    if _live is not None:  # inside other work: one more row on the live display
        task = _live.add_task(label, total=total, unit=unit)
        try:
            yield lambda n, bar=_live: bar.advance(task, n)
        finally:
            _live.remove_task(task)
        return
    from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.text import Text

    class Count(ProgressColumn):
        def render(self, task):  # nothing for a stage (no total)
            return Text("" if task.total is None else f"{task.completed:,.0f}/{task.total:,.0f} {task.fields['unit']}")

    console, around = target
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), Count(), TimeElapsedColumn())
    with around() if around is not None else nullcontext():
        bar = Progress(*columns, console=console, transient=True)
        _live = bar
        try:
            with bar:
                task = bar.add_task(label, total=total, unit=unit)
                yield lambda n: bar.advance(task, n)
        finally:
            _live = None


def stage(label: str):
    """A spinner row with the elapsed time, for work with no count (loading a model, a fit)."""
    return progress_bar(label, None)

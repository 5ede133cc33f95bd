"""Terminal output of the command line, and the one-line error of a node that cannot start.

rich is imported on first use: a node that prints nothing through it never holds it (~1.5 MB, issue
#25), and the interpreter that serves ``f0mesh up`` reports its start-up errors from here, without the
command line's parser (serve.run_in_fresh_interpreter).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


@functools.cache
def _console(stderr: bool) -> Console:
    from rich.console import Console

    return Console(stderr=stderr)


def err() -> Console:
    return _console(True)


def out() -> Console:
    return _console(False)


def error_line(message: str) -> None:
    err().print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)

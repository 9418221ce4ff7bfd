"""What every ``grader`` command shares: the session's state on click's context, common options, symbols.

Commands find their registries through the click context (:func:`registries`), never through a module
global, so a test hands in its own with ``CliRunner().invoke(main, args, obj=CliState(registries))`` and the
command modules need not import :mod:`grader.cli` back (the group imports them, once, at its top).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from grader.config import Settings
    from grader.plugins import Registries

SYMBOLS = {"pass": "✔", "fail": "✘", "error": "!", "timeout": "⌛", "oom": "M", "grader_error": "?"}
COLORS = {"pass": "green", "fail": "red", "error": "yellow", "timeout": "magenta", "oom": "magenta",
          "grader_error": "cyan"}

sandbox_option = click.option("--sandbox", metavar="NAME", help="Sandbox backend (default: best available; "
                              "see `grader sandboxes`).")
seed_option = click.option("--seed", type=int, help="Seed for python, numpy and torch (default 0).")


@dataclass
class CliState:
    """One invocation's state: the registries (loaded from the installed plugins on first use)."""

    loaded: Registries | None = None

    def registries(self) -> Registries:
        if self.loaded is None:
            from grader import api

            self.loaded = api.load()
        return self.loaded


def state() -> CliState:
    """The running command's state (made on first use when the caller passed no ``obj``)."""
    return click.get_current_context().ensure_object(CliState)


def registries() -> Registries:
    """The running command's registries: exercises, sandboxes, reporters, assets, policies."""
    return state().registries()


def ray_address(executor: str, address: str | None) -> str | None:
    """The Ray head's address with ``--executor ray`` (None for local); refused when it is missing."""
    if executor != "ray":
        return None
    if not address:
        from grader.errors import GraderError

        raise GraderError("--executor ray needs --address HOST:PORT (the head's address from `ray start --head`)")
    return address


def settings(**overrides: Any) -> Settings:
    """Settings from the environment and config files, with the command's options over them."""
    from grader.config import Settings

    return Settings.load(overrides)


class LiveLine:
    """Progress on one redrawn line where a person watches (a terminal); elsewhere (a log, CI) nothing is
    redrawn and the caller prints whole lines with :meth:`say` instead, so a log stays readable."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())  # a replaced stderr may have none

    def show(self, text: str) -> None:
        """Redraw the line (a terminal only)."""
        if self.live:
            width = max(shutil.get_terminal_size((100, 20)).columns - 1, 40)
            self.stream.write("\r" + text[:width].ljust(width))
            self.stream.flush()

    def say(self, text: str) -> None:
        """A line that stays, printed over the live line."""
        self.clear()
        click.echo(text, file=self.stream)

    def clear(self) -> None:
        if self.live:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def finish(self) -> None:
        """Keep the last state on screen and move below it."""
        if self.live:
            self.stream.write("\n")
            self.stream.flush()


def table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Print aligned columns, two spaces apart; the last column is not padded (it may be long: a path, a URL)."""
    lines = [tuple(str(v) for v in row) for row in [header, *rows]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    for line in lines:
        click.echo("  ".join([*(v.ljust(w) for v, w in zip(line, widths, strict=False)), line[-1]]).rstrip())

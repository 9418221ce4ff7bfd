"""The ``grader`` command: parse, build Settings, call :mod:`grader.api`, print, exit.

Heavy modules load inside commands, so ``grader --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from grader import __version__
from grader.cli import common
from grader.cli.assets import assets as _assets_group
from grader.cli.authoring import COMMANDS as _AUTHORING_COMMANDS
from grader.cli.batch import COMMANDS as _BATCH_COMMANDS
from grader.cli.client import COMMANDS as _CLIENT_COMMANDS
from grader.cli.common import COLORS, SYMBOLS, sandbox_option, seed_option
from grader.cli.server import COMMANDS as _SERVER_COMMANDS
from grader.errors import GraderError

if TYPE_CHECKING:
    from grader.models import GradeResult


class GraderGroup(click.Group):
    """Prints handled errors as one line (no traceback) with their exit code; adds the plugins' commands."""

    _plugin_commands: dict[str, click.Command] | None = None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GraderError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(exc.exit_code)

    def plugin_commands(self) -> dict[str, click.Command]:
        """What ``grader_register_commands`` adds, loaded once and only when asked for."""
        if self._plugin_commands is None:
            from grader.plugins import make_plugin_manager
            from grader.registry import CommandRegistry

            registry = CommandRegistry()
            try:
                make_plugin_manager().hook.grader_register_commands(registry=registry)
                clash = sorted(c.name for c in registry if c.name in self.commands)
                if clash:
                    raise GraderError(f"a plugin registers the command {clash[0]!r}, which grader already has")
            except GraderError as exc:  # the built-in commands still work; say why the plugin's do not
                click.secho(f"warning: plugin commands unavailable: {exc}", fg="yellow", err=True)
                registry = CommandRegistry()
            self._plugin_commands = {str(c.name): c for c in registry}
        return self._plugin_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.plugin_commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self.commands.get(cmd_name) or self.plugin_commands().get(cmd_name)


@click.group(cls=GraderGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="grader")
def main() -> None:
    """Grade deep-learning exercises: sandboxed checks, tensor-aware reports.

    \b
    Students:     grader list                        what exercises exist
                  grader start self-attention        copy the stub to ./self-attention
                  grader check self-attention        run the public checks on your work
                  grader submit self-attention       send it to the course's grading server
    Instructors:  grader grade EXERCISE SUB... --out results/
                  grader batch ROSTER --out results/ grade a whole class
                  grader serve --roster R --db DB    run the grading server students submit to
                  grader demo                        grade a sample submission end to end
    """


@main.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
def list_cmd(as_json: bool) -> None:
    """List the exercises: id, level, title, points, device, and where each comes from.

    When two sources hold one exercise, the one you named in GRADER_EXERCISES wins, then a source checkout,
    then an instructor's course over a student's; SOURCE says which, and which copies it hides.
    """
    registry = common.registries().exercises
    exercises = registry.ordered()
    for ex_id, why in sorted(registry.broken.items()):  # listed, not hidden: an author must see why
        click.secho(f"warning: exercise {ex_id!r} cannot be loaded: {why}", fg="yellow", err=True)
    if as_json:
        click.echo(json.dumps([e.summary_dict() for e in exercises], indent=2))
        return
    rows = [(e.id, e.level, e.title, f"{e.points:g}", e.device, e.source + (
        f" (over {', '.join(registry.shadowed[e.id])})" if e.id in registry.shadowed else "")) for e in exercises]
    common.table(("ID", "LEVEL", "TITLE", "POINTS", "DEVICE", "SOURCE"), rows)


@main.command()
@click.argument("exercise")
@click.argument("directory", required=False, type=click.Path(path_type=Path))
def start(exercise: str, directory: Path | None) -> None:
    """Copy EXERCISE's student stub into DIRECTORY (default ./EXERCISE)."""
    from grader import api

    dest = directory or Path(exercise)
    written = api.start(common.registries(), exercise, dest)
    for path in written:
        click.echo(f"  created {path}")
    click.echo(f"Next: edit {dest / 'solution.py'}, then run `grader check {exercise} {dest}`.")


def _print_result(result: GradeResult, verbose: bool) -> None:
    for c in result.checks:
        sym = click.style(SYMBOLS[c.status.value], fg=COLORS[c.status.value])
        line = f" {sym} {c.status.value:<12} {c.score:g}/{c.max_score:g}  {c.title}"
        click.echo(line)
        if c.status.value != "pass" and c.message and c.visibility.value != "hidden":
            click.echo(f"      {c.message}")
        if verbose and c.output and c.status.value != "pass" and (
                c.visibility.value == "public" or c.status.value == "grader_error"):  # the grader's own log
            click.echo("      " + c.output.replace("\n", "\n      "))
    iso = result.provenance.get("isolation", {})
    shut = [k for k in ("filesystem", "network") if iso.get(k)] + (["pids"] if iso.get("pid_namespace") else [])
    where = f"{iso.get('backend')} (isolated: {', '.join(shut) or 'nothing'}; {iso.get('user', '?')})"
    click.echo(f"Score: {result.score:g}/{result.max_score:g} ({result.status.value}); "
               f"sandbox: {where}; {result.execution_time_s:.1f} s")


@main.command()
@click.argument("exercise")
@click.argument("submission", required=False, type=click.Path(path_type=Path))
@sandbox_option
@seed_option
@click.option("--out", type=click.Path(path_type=Path), help="Also write results.json and report.html here.")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and full failure output.")
def check(exercise: str, submission: Path | None, sandbox: str | None, seed: int | None, out: Path | None,
          verbose: bool) -> None:
    """Run EXERCISE's public checks on SUBMISSION (default ./EXERCISE).

    Hidden checks are not run here; the summary says how many there are.  Exit code 0 when every
    public check passes, 1 when some do not, 2 for usage errors, 3 for grader errors.
    """
    from grader import api

    settings = common.settings(sandbox=sandbox, seed=seed)
    result = api.grade(common.registries(), exercise, submission or Path(exercise), settings, public_only=True,
                       out_dir=out)
    _print_result(result, verbose)
    if result.not_run:
        count = f"{result.not_run} hidden check(s)" if result.not_run > 0 else "Hidden checks"
        click.echo(f"{count} worth {result.not_run_points:g} point(s) were not run: "
                   "passing the public checks does not mean full marks.")
    elif result.status.value == "pass":
        click.echo("All public checks passed.")
    if out:
        click.echo(f"Report: {out / 'report.html'}")
    sys.exit(3 if result.status.value == "grader_error" else 0 if result.status.value == "pass" else 1)


@main.command("grade")
@click.argument("exercise")
@click.argument("submissions", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Results go to OUT/<submission>/<EXERCISE>/{results.json,report.html}.")
@sandbox_option
@seed_option
@click.option("-k", "select", metavar="EXPR", help="Only checks matching this pytest -k expression.")
def grade_cmd(exercise: str, submissions: tuple[Path, ...], out: Path, sandbox: str | None, seed: int | None,
              select: str | None) -> None:
    """Grade each SUBMISSION (a folder with solution.py, a .py file, a .zip or a notebook) with every check.

    Submissions with the same name (a/solution.py, b/solution.py) get their folder's name too, so
    none overwrites another.  Exit code 0 whenever grading worked, whatever the scores; 2 for usage
    errors, 3 when the grader itself failed on some submission (those results say grader_error).
    """
    from grader import api
    from grader.checks import warm
    from grader.engine.core import choose_sandbox
    from grader.engine.submission import result_names

    settings = common.settings(sandbox=sandbox, seed=seed, select=select)
    registries = common.registries()
    registries.exercises.get(exercise)
    choose_sandbox(registries, settings.sandbox)
    failed = 0
    # several submissions: warm runners (one import of pytest and torch for all); one: a cold start costs less
    with warm.pool(1, enabled=settings.warm and len(submissions) > 1):
        for sub, name in zip(submissions, result_names(list(submissions)), strict=True):
            dest = out / name / exercise
            click.echo(f"== {sub} -> {dest}")
            try:
                result = api.grade(registries, exercise, sub, settings, out_dir=dest)
            except Exception as exc:  # a grader failure on one submission must not leave the others ungraded
                click.secho(f"   grader_error: {type(exc).__name__}: {exc} (a grader problem; regrade it)",
                            fg="cyan")
                failed += 1
                continue
            _print_result(result, verbose=False)
            failed += result.status.value == "grader_error"
    sys.exit(3 if failed else 0)


@main.command()
def sandboxes() -> None:
    """List sandbox backends and whether each works on this machine."""
    for sb in sorted(common.registries().sandboxes, key=lambda s: s.priority):
        ok, why = sb.available()
        click.echo(f"{sb.name:<10} {'available' if ok else 'unavailable':<12} {why}")


@main.command()
@click.argument("exercise", default="sample-softmax")
@click.option("--out", type=click.Path(path_type=Path), default=Path("grader-demo"), show_default=True)
@sandbox_option
def demo(exercise: str, out: Path, sandbox: str | None) -> None:
    """Grade a sample submission end to end and write its HTML report.

    EXERCISE (default: sample-softmax, which ships with grader) must keep a sample submission in its
    folder's sample/ (self-attention does, where the course is installed).
    """
    from grader import api
    from grader.authoring.scaffold import SAMPLE, SAMPLE_ID

    registries = common.registries()
    folder = registries.exercises.get(exercise).checks_dir.parent
    sample = SAMPLE / "submission" if exercise == SAMPLE_ID else folder / "sample"
    if not sample.is_dir():
        raise GraderError(f"{exercise} keeps no sample submission (a sample/ folder beside its exercise.toml)")
    result = api.grade(registries, exercise, sample, common.settings(sandbox=sandbox),
                       out_dir=out / "sample" / exercise)
    _print_result(result, verbose=False)
    click.echo(f"Report: {(out / 'sample' / exercise / 'report.html').resolve()}")
    sys.exit(3 if result.status.value == "grader_error" else 0)


# instructor commands (batch, regrade, export, report, export-student, similarity); the grading server
# (serve, tokens) and its student client (submit, login, status); `grader assets ...`; for exercise
# authors: new-exercise, check-exercise, exercise-schema
for _command in [*_BATCH_COMMANDS, *_SERVER_COMMANDS, *_CLIENT_COMMANDS, _assets_group, *_AUTHORING_COMMANDS]:
    main.add_command(_command)


if __name__ == "__main__":
    main()

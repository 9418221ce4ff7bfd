"""Instructor commands: batch, regrade, export, report, export-student (registered in :mod:`grader.cli`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from grader.cli import common
from grader.cli.common import LiveLine, sandbox_option, seed_option

if TYPE_CHECKING:
    from grader.batch.jobs import Job, Outcome

BAR = 24

def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


class ProgressBar:
    """A live line on a terminal (done, failed, remaining, ETA); one line per job anywhere else."""

    def __init__(self, stream: Any = None) -> None:
        self.line = LiveLine(stream)
        self.total = self.done_n = self.failed = self.base = 0
        self.started = time.monotonic()

    def start(self, total: int, skipped: int, refused: int) -> None:
        self.total, self.base = total, skipped + refused
        self.started = time.monotonic()
        if skipped or refused:
            self._line(f"{total} jobs: {skipped} already graded (skipped), {refused} refused by policy, "
                       f"{total - skipped - refused} to grade")
        self.tick()

    def _status(self) -> str:
        finished = self.base + self.done_n
        remaining = self.total - finished
        elapsed = time.monotonic() - self.started
        eta = _clock(elapsed / self.done_n * remaining) if self.done_n else "--:--"
        filled = int(BAR * finished / self.total) if self.total else BAR
        return (f"[{'#' * filled}{'.' * (BAR - filled)}] {finished}/{self.total} done · {self.failed} failed · "
                f"{remaining} remaining · ETA {eta} · {_clock(elapsed)} elapsed")

    def _line(self, text: str) -> None:
        self.line.say(text)

    def done(self, job: Job, outcome: Outcome) -> None:
        self.done_n += 1
        self.failed += outcome.status == "grader_error"
        what = f"{outcome.score:g}/{outcome.max_score:g} {outcome.status}" if outcome.status != "grader_error" \
            else f"grader_error: {outcome.error or 'see results.json'} (retried on the next run)"
        if not self.line.live or outcome.status == "grader_error":
            self._line(f"  {job.label}: {what} ({outcome.seconds:.1f} s)")
        if not self.line.live:
            self._line("  " + self._status())
        self.tick()

    def tick(self) -> None:
        self.line.show(self._status())

    def finish(self) -> None:
        self.line.finish()


def _executor(name: str, address: str | None, registries: Any, settings: Any, workers: int) -> Any:
    from grader.batch.jobs import LocalExecutor

    head = common.ray_address(name, address)
    if head is not None:
        from grader.batch.ray_executor import RayExecutor

        return RayExecutor(head, settings)
    return LocalExecutor(registries, settings, workers)


executor_options = [
    click.option("--workers", "-j", type=click.IntRange(1), default=1, show_default=True,
                 help="Jobs graded at once on this machine (each in its own sandboxed worker)."),
    click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                 help="local: a pool on this machine; ray: one Ray task per job on the cluster at --address."),
    click.option("--address", metavar="HOST:PORT", help="Ray head address (with --executor ray)."),
]


def _with(options: list[Any]) -> Any:
    def apply(fn: Any) -> Any:
        for option in reversed(options):
            fn = option(fn)
        return fn
    return apply


@click.command("batch", short_help="Grade a class roster in parallel, resumably.")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Output folder: OUT/<student>/<exercise>/{results.json,report.html} and OUT/gradebook.sqlite.")
@click.option("--exercise", "exercises", multiple=True, metavar="ID", help="Only this exercise (repeatable).")
@_with(executor_options)
@sandbox_option
@seed_option
@click.option("--policies", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Class file (TOML) with [deadlines], [late_penalty], [rate_limit]; see docs/instructors.md.")
def batch_cmd(source: Path, out: Path, exercises: tuple[str, ...], workers: int, executor: str,
              address: str | None, sandbox: str | None, seed: int | None, policies: Path | None) -> None:
    """Grade a whole class: every SOURCE/<student>/<exercise-id>/ in parallel.

    \b
    SOURCE is a roster folder or an LMS-style zip of one:
      roster/alice/self-attention/solution.py     a folder, as `grader grade` takes
      roster/bob/self-attention.py                 a single file (.py, .zip or .ipynb)
    Examples:
      grader batch roster/ --out results/ --workers 4
      grader batch class-export.zip --out results/ --exercise self-attention
      grader batch roster/ --out results/ --executor ray --address 127.0.0.1:6379

    Rerunning resumes: work already in OUT/gradebook.sqlite (same submission, same exercise version)
    is skipped; grader_error results are retried.  Exit code 0 when every job was graded, 3 when some
    hit a grader error (rerun to retry them), 2 for usage errors.
    """
    from grader.batch.run import run_batch

    settings = common.settings(sandbox=sandbox, seed=seed)
    registries = common.registries()
    out = out.resolve()
    summary = run_batch(registries, source.resolve(), out, settings, exercises=exercises,
                        executor=_executor(executor, address, registries, settings, workers),
                        policies_file=policies, progress=ProgressBar())
    for note in summary.notes + summary.refused:
        click.echo(f"note: {note}")
    click.echo(f"{summary.total} jobs: {summary.graded} graded, {summary.skipped} already graded, "
               f"{summary.failed} grader errors, {len(summary.refused)} refused. Gradebook: {out / 'gradebook.sqlite'}")
    if summary.where:
        click.echo(f"Graded on {len(summary.where)} machine(s): " + ", ".join(
            f"{where} ({count})" for where, count in sorted(summary.where.items())))
    if summary.failed:
        click.echo(f"Rerun the same command to retry the {summary.failed} job(s) that hit a grader error.")
    click.echo(f"Next: grader report {out} --out {out / 'class.html'}  ·  grader export {out} --format csv")
    sys.exit(3 if summary.failed else 0)


@click.command("regrade", short_help="Regrade with current checks: diff, then --publish.")
@click.argument("out_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--exercise", metavar="ID", help="Only this exercise.")
@click.option("--publish", is_flag=True, help="Accept the new scores (without it nothing published changes).")
@click.option("--all", "show_all", is_flag=True, help="List unchanged students too.")
@_with(executor_options)
@sandbox_option
@seed_option
def regrade_cmd(out_dir: Path, exercise: str | None, publish: bool, show_all: bool, workers: int, executor: str,
                address: str | None, sandbox: str | None, seed: int | None) -> None:
    """Regrade DIR's published grades with the current checks and show what would change.

    \b
    grader regrade results/                      grade aside, print the per-student diff
    grader regrade results/ --publish            accept it (reuses the grading just done)
    Exit code 0 when every job was regraded, 3 when some hit a grader error (their old grade stands).
    """
    from grader.batch.regrade import regrade

    settings = common.settings(sandbox=sandbox, seed=seed)
    registries = common.registries()
    out_dir = out_dir.resolve()
    report = regrade(registries, out_dir, settings, exercise=exercise, publish=publish,
                     executor=_executor(executor, address, registries, settings, workers), progress=ProgressBar())
    for note in report.notes:
        click.echo(f"note: {note}")
    changed = [c for c in report.changes if c.changed]
    failed = [c for c in report.changes if c.new_score is None]
    for c in report.changes if show_all else changed + failed:
        new = "grader_error (old grade kept)" if c.new_score is None else f"{c.new_score:g} {c.new_status}"
        delta = "" if c.new_score is None else f"  ({c.new_score - c.old_score:+g})"
        click.echo(f"  {c.student:<20} {c.exercise:<22} {c.old_score:g} {c.old_status} -> {new}{delta}")
    click.echo(f"{len(report.changes)} grades regraded: {len(changed)} would change, {len(failed)} failed.")
    if publish:
        click.echo(f"Published {report.published} regraded result(s) into {out_dir}.")
    elif changed:
        click.echo(f"Nothing was published. To accept: grader regrade {out_dir}"
                   f"{' --exercise ' + exercise if exercise else ''} --publish")
    sys.exit(3 if failed else 0)


@click.command("export", short_help="Export published grades: gradescope, csv (LMS) or junit.")
@click.argument("out_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--format", "fmt", metavar="NAME", required=True,
              help="gradescope: results.json per submission; csv: one row per student, one column per "
                   "exercise (LMS import); junit: XML for CI systems; or a plugin's format (see below).")
@click.option("--to", "dest", type=click.Path(path_type=Path),
              help="Where to write (default DIR/exports/gradescope/, DIR/exports/grades.csv, DIR/exports/junit.xml).")
def export_cmd(out_dir: Path, fmt: str, dest: Path | None) -> None:
    """Export DIR's published grades for an LMS or a CI system.

    Formats come from plugins (grader_register_exporters); an unknown NAME lists the installed ones.
    """
    from grader.reports.exports import export

    path = export(out_dir, fmt, dest, common.registries().exporters)
    click.echo(f"Wrote {path}")


@click.command("report", short_help="Write the static HTML class report.")
@click.argument("out_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "dest", type=click.Path(path_type=Path), help="The HTML file (default DIR/class.html).")
def report_cmd(out_dir: Path, dest: Path | None) -> None:
    """Write a static class report: score histogram, pass rates, slowest checks, students by score."""
    from grader.reports.class_report import write_class_report

    path = write_class_report(out_dir, dest or out_dir / "class.html")
    click.echo(f"Class report: {path.resolve()}")


@click.command("export-student", short_help="Build the student pack (stubs, public checks, no reference).")
@click.argument("dest", metavar="OUT", type=click.Path(path_type=Path))
@click.option("--exercise", "exercises", multiple=True, metavar="ID", help="Only this exercise (repeatable).")
@click.option("--answers/--no-answers", default=True, show_default=True,
              help="Record the reference's answers to the public checks so they run in the pack.")
@click.option("--wheel", "wheel_dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Also build the student course as an installable wheel in DIR.")
@sandbox_option
def export_student_cmd(dest: Path, exercises: tuple[str, ...], answers: bool, wheel_dir: Path | None,
                       sandbox: str | None) -> None:
    """Build the student pack in OUT: stubs, public checks and what `grader check` needs.

    \b
    The pack holds no reference code and no hidden check; it is verified before this command ends.
    Students use it with:   GRADER_EXERCISES=OUT grader check EXERCISE
    or, with --wheel DIR:   pip install grader DIR/grader_course_student-*.whl
    """
    from grader.authoring.student_pack import build_pack

    pack = build_pack(common.registries(), dest, list(exercises), common.settings(sandbox=sandbox), answers_on=answers)
    for line in pack.lines():
        click.echo(line)
    if wheel_dir is not None:
        from grader.authoring import course_dist

        wheel = course_dist.build_wheel(dest, wheel_dir, course_dist.STUDENT, course_dist.__version__,
                                        "The student course: stubs, public checks and recorded answers.")
        click.echo(f"Student course wheel: {wheel}")


@click.command("similarity", short_help="Pairs of submissions whose code is suspiciously alike.")
@click.argument("out_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--exercise", metavar="ID", help="Only this exercise (default: each one graded in DIR).")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.33, show_default=True,
              help="Report pairs sharing at least this share of their code.")
@click.option("--json", "as_json", is_flag=True,
              help='Print the pairs as [{"exercise", "a", "b", "similarity"}], most similar first.')
@click.option("--shown", type=click.IntRange(0), default=50, show_default=True,
              help="Pairs drawn side by side in DIR/similarity.html.")
def similarity_cmd(out_dir: Path, exercise: str | None, threshold: float, as_json: bool, shown: int) -> None:
    """Compare the published submissions of the batch in DIR, per exercise, and write DIR/similarity.html
    (the pairs side by side, shared code marked) and DIR/similarity.json; `grader report` then links them.

    Code is compared after its names and strings are normalised, with the exercise's stub removed as
    boilerplate; notebooks by their code cells. Similarity is the larger of the two shares of code a pair
    has in common, in [0, 1]. It is evidence for a person to read: no grade changes.

    \b
    Example:  grader similarity graded/ --exercise self-attention --threshold 0.5
    """
    import json

    from grader.batch.similarity import class_pairs, write_pages

    def progress(ex_id: str, n: int) -> None:
        if not as_json:
            click.echo(f"comparing {n} submission(s) to {ex_id} ({n * (n - 1) // 2} pairs)", err=True)

    started = time.perf_counter()
    pairs, subs = class_pairs(out_dir, common.registries(), exercise, threshold, progress)
    json_path, html_path = write_pages(out_dir, pairs, subs, shown, threshold)
    if as_json:
        click.echo(json.dumps([p.summary() for p in pairs], indent=1))
        return
    for n, p in enumerate(pairs, 1):
        click.echo(f"{n:>4}. {p.exercise:<24} {p.a:<20} {p.b:<20} {100 * p.similarity:5.1f} %")
    unreadable = sum(1 for by in subs.values() for s in by.values() if s.problem)
    click.echo(f"{len(pairs)} pair(s) at or above {100 * threshold:.0f} % in {time.perf_counter() - started:.1f} s"
               + (f"; {unreadable} submission(s) could not be read (listed in the page)" if unreadable else ""))
    click.echo(f"Side by side: {html_path.resolve()}\nAll pairs:    {json_path.resolve()}")


COMMANDS = [batch_cmd, regrade_cmd, export_cmd, report_cmd, export_student_cmd, similarity_cmd]

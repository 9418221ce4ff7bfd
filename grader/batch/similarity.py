"""Code similarity across a class: pairs of submissions whose code is suspiciously alike, per exercise.

Evidence for a person, never a verdict: nothing here reads or changes a score.  Each submission is staged
as grading stages it (a zip unpacked within the limits, a notebook reduced to its code cells), then
fingerprinted by winnowing (copydetect, the algorithm of MOSS) after its tokens are normalised, so renamed
variables and changed strings still match.  The exercise's stub is boilerplate: code every student was
given matches nothing.  A pair's similarity is the larger of the two shares of code the pair has in common
(a short copy inside a long file is still a copy).
"""

from __future__ import annotations

import io
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: copydetect's defaults: matches shorter than NOISE characters of normalised code are ignored, matches of
#: GUARANTEE characters or more are always found (window = GUARANTEE - NOISE + 1)
NOISE = 25
GUARANTEE = 25
#: pairs below this similarity are not reported (copydetect's display threshold)
THRESHOLD = 0.33


@dataclass(frozen=True)
class Pair:
    """Two submissions to one exercise and how much of their code they share (shares in [0, 1])."""

    exercise: str
    a: str
    b: str
    similarity: float
    a_share: float
    b_share: float

    def summary(self) -> dict[str, Any]:
        """The JSON form: exercise, a, b, similarity (most similar first in a list)."""
        return {"exercise": self.exercise, "a": self.a, "b": self.b, "similarity": round(self.similarity, 4)}


@dataclass
class Submission:
    """One student's code for one exercise, or why it could not be read."""

    student: str
    code: str = ""
    problem: str = ""


def submission_code(source: Path, work: Path) -> tuple[str, str]:
    """(code, problem): the Python files of ``source`` as grading stages them, solution.py first."""
    from grader.engine.submission import stage

    staged = stage(source, work / "staged")
    if staged.problem:
        return "", staged.problem
    files = sorted(staged.path.rglob("*.py"), key=lambda p: (p.name != "solution.py", p.as_posix()))
    return "\n\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files), ""


def _fingerprint(name: str, code: str, boilerplate: Any = None) -> Any:
    from copydetect import CodeFingerprint

    return CodeFingerprint(name, NOISE, GUARANTEE - NOISE + 1, boilerplate=boilerplate, fp=io.StringIO(code),
                           language="python")


def _boilerplate(stub_code: str) -> Any:
    import numpy as np

    if not stub_code.strip():
        return None
    return np.array(sorted(_fingerprint("stub.py", stub_code).hashes), dtype=np.int64)


class _Prints:
    """One submission's fingerprints as arrays: each fingerprinted position and its hash, the distinct hashes."""

    def __init__(self, name: str, code: str, boilerplate: Any) -> None:
        import numpy as np

        fp = _fingerprint(f"{name}.py", code, boilerplate)
        self.name = name
        self.coverage = float(fp.token_coverage)
        self.hash_at = np.array([h for h, where in fp.hash_idx.items() for _ in where], dtype=np.int64)
        self.positions = np.array([i for where in fp.hash_idx.values() for i in where], dtype=np.int64)
        self.distinct = np.unique(self.hash_at)

    def share(self, common: Any) -> float:
        """The share of this code covered by the ``common`` fingerprints: copydetect's similarity, exactly (the
        total length of the merged NOISE-character slices at the shared positions, over the token coverage)."""
        import numpy as np

        at = np.sort(self.positions[np.isin(self.hash_at, common)])
        if not at.size or not self.coverage:
            return 0.0
        covered = np.minimum(np.diff(at), NOISE).sum() + NOISE
        return min(1.0, float(covered) / self.coverage)


def compare(exercise: str, submissions: Iterable[Submission], stub_code: str = "",
            threshold: float = THRESHOLD) -> list[Pair]:
    """Every pair of ``submissions`` at or above ``threshold``, most similar first (ties by name)."""
    import numpy as np

    boilerplate = _boilerplate(stub_code)
    prints = [_Prints(s.student, s.code, boilerplate) for s in submissions if not s.problem and s.code.strip()]
    pairs = []
    for i, a in enumerate(prints):
        for b in prints[i + 1:]:
            common = np.intersect1d(a.distinct, b.distinct, assume_unique=True)
            if not common.size:
                continue
            share_a, share_b = a.share(common), b.share(common)
            if max(share_a, share_b) >= threshold:
                (first, first_share), (second, second_share) = sorted([(a.name, share_a), (b.name, share_b)])
                pairs.append(Pair(exercise, first, second, max(share_a, share_b), first_share, second_share))
    return sorted(pairs, key=lambda p: (-p.similarity, p.a, p.b))


def side_by_side(a_code: str, b_code: str, context: int = 3) -> tuple[str, str]:
    """The two codes as escaped HTML with the regions they share in ``<mark>``, far-off lines elided."""
    from copydetect import compare_files
    from copydetect.utils import highlight_overlap
    from markupsafe import escape

    fa, fb = _fingerprint("a.py", a_code), _fingerprint("b.py", b_code)
    _, _, (slices_a, slices_b) = compare_files(fa, fb)
    out = []
    for code, slices in ((a_code, slices_a), (b_code, slices_b)):
        if slices.size == 0:
            out.append(str(escape(code)))
            continue
        html, _ = highlight_overlap(code, slices, "<mark>", "</mark>", truncate=context, escape_html=True)
        out.append(html)
    return out[0], out[1]


def class_pairs(out_dir: Path, registries: Any, exercise: str | None = None, threshold: float = THRESHOLD,
                progress: Callable[[str, int], None] | None = None,
                ) -> tuple[list[Pair], dict[str, dict[str, Submission]]]:
    """The pairs among the published submissions of the batch in ``out_dir`` (one exercise, or each), and
    the submissions read, per exercise then student (those that could not be read carry a problem)."""
    from grader.gradebook import require

    with require(out_dir) as gradebook:
        rows = gradebook.grades(exercise)
    by_exercise: dict[str, dict[str, Submission]] = defaultdict(dict)
    with tempfile.TemporaryDirectory(prefix="grader-similarity-") as tmp:
        for n, row in enumerate(rows):
            source = Path(row["submission_path"])
            source = source if source.is_absolute() else out_dir / source
            if not source.exists():
                sub = Submission(row["student"], problem=f"{source} is gone")
            else:
                code, problem = submission_code(source, Path(tmp) / str(n))
                sub = Submission(row["student"], code, problem)
            by_exercise[row["exercise"]][row["student"]] = sub
    pairs: list[Pair] = []
    for ex_id, subs in sorted(by_exercise.items()):
        if progress:
            progress(ex_id, len(subs))
        pairs += compare(ex_id, subs.values(), stub_code(registries, ex_id), threshold)
    return sorted(pairs, key=lambda p: (-p.similarity, p.exercise, p.a, p.b)), dict(by_exercise)


def stub_code(registries: Any, exercise_id: str) -> str:
    """The exercise's stub, every student's starting point; empty when the exercise is no longer installed."""
    if registries is None or exercise_id not in registries.exercises:
        return ""
    stub = registries.exercises.get(exercise_id).stub_dir
    return "\n\n".join(p.read_text(encoding="utf-8") for p in sorted(Path(stub).rglob("*.py")))


def write_pages(out_dir: Path, pairs: list[Pair], subs: dict[str, dict[str, Submission]],
                shown: int = 50, threshold: float = THRESHOLD) -> tuple[Path, Path]:
    """OUT/similarity.json (every pair, both shares) and OUT/similarity.html (the ``shown`` most similar pairs,
    side by side); the class report links the page when the file is there."""
    import json

    from markupsafe import Markup

    from grader.fs import atomic_write_text
    from grader.reports.templating import render

    data = {"threshold": threshold, "pairs": [asdict(p) for p in pairs],
            "unreadable": sorted([ex, s.student, s.problem] for ex, by in subs.items() for s in by.values()
                                 if s.problem)}
    json_path = atomic_write_text(out_dir / "similarity.json", json.dumps(data, indent=1) + "\n")
    views = []
    for p in pairs[:shown]:
        left, right = side_by_side(subs[p.exercise][p.a].code, subs[p.exercise][p.b].code)
        views.append({"pair": p, "left": Markup(left), "right": Markup(right)})
    counts = {ex: len(by) for ex, by in subs.items()}
    html = render(
        "similarity.html", title=f"Similar code — {out_dir.resolve().name}", views=views, pairs=pairs, counts=counts,
        unreadable=data["unreadable"], threshold=threshold, hidden=max(0, len(pairs) - shown))
    return json_path, atomic_write_text(out_dir / "similarity.html", html)

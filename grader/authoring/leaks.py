"""Does a student pack leak the answers?  Judged by what is specific to a reference or a hidden check.

A shared line is no evidence: ``with torch.no_grad():`` is in every exercise.  What counts is text that
only the secret files hold.  Per exercise, three kinds of secret are collected:

* **code**: runs of :data:`N` words of the reference and of the hidden checks (in Python, the names and
  numbers of the code, strings and comments left to the literals; punctuation and layout ignored), about
  two to four lines of code;
* **literals**: string constants of at least :data:`MIN_LITERAL` characters in those files;
* **data**: lines of at least :data:`MIN_DATA_LINE` characters of the hidden data files (held-out text).

A secret is dropped when the instructor's public material already shows it (so it is not specific):
the exercise's stub, public check files and exercise.toml, the core library students install anyway, and
every file the pack ships for the *other* exercises.  The exercise's own conftest and helper modules are
no evidence: they are shared with the hidden checks, and a reference function or hidden check copied into
one is the classic leak.  Hidden data is checked against the stub, toml and core only, so a held-out
sentence quoted in a public check's message is refused.
"""

from __future__ import annotations

import ast
import contextlib
import re
from dataclasses import dataclass
from pathlib import Path

from grader.fs import PYCACHE, files_under
from grader.models import Exercise
from grader.paths import PACKAGE_DIR

N = 20
MIN_LITERAL = 20
MIN_DATA_LINE = 20
TEXT_SUFFIXES = (".py", ".txt", ".json", ".jsonl", ".toml", ".md", ".csv", ".tsv", ".html", ".cfg", "")
_TOKEN = re.compile(r"\w+")
CORE = PACKAGE_DIR


@dataclass(frozen=True)
class Leak:
    """One pack file holding one secret, with both places."""

    shipped: str
    secret: str
    text: str

    def __str__(self) -> str:
        return f"{self.shipped} repeats {self.secret}: {self.text[:70]!r}"


def files(root: Path | None) -> list[Path]:
    if root is None or not root.is_dir():
        return []
    return files_under(root, PYCACHE, TEXT_SUFFIXES)


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


def tokens(text: str) -> list[tuple[str, int]]:
    """The words of ``text`` (identifiers, numbers, words of strings and comments) with their line numbers.

    Punctuation and layout are ignored, so re-indented, re-wrapped or re-punctuated copies still match,
    and runs of brackets and annotations (``(x: torch.Tensor) -> torch.Tensor``) count for little.
    """
    out = []
    line, last = 1, 0
    for m in _TOKEN.finditer(text):
        line += text.count("\n", last, m.start())
        last = m.start()
        out.append((m.group(), line))
    return out


def code_tokens(text: str) -> list[tuple[str, int]] | None:
    """The words of Python code without its strings and comments (those are judged as literals), or None."""
    import io
    import tokenize

    try:
        toks = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return None
    return [(t.string, t.start[0]) for t in toks if t.type in (tokenize.NAME, tokenize.NUMBER)]


def ngrams(path: Path) -> dict[tuple[str, ...], int]:
    """Every run of :data:`N` tokens of ``path`` -> the line it starts on (code words only, for Python)."""
    text = _read(path)
    toks = (code_tokens(text) if path.suffix == ".py" else None) or tokens(text)
    grams: dict[tuple[str, ...], int] = {}
    for i in range(len(toks) - N + 1):
        grams.setdefault(tuple(t for t, _ in toks[i:i + N]), toks[i][1])
    return grams


def literals(path: Path) -> dict[str, int]:
    """String constants of ``path`` (Python) long enough to identify it -> line."""
    if path.suffix != ".py":
        return {}
    found: dict[str, int] = {}
    with contextlib.suppress(SyntaxError, ValueError):
        for node in ast.walk(ast.parse(_read(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = " ".join(node.value.split())
                if len(text) >= MIN_LITERAL and "\n" not in node.value.strip():
                    found.setdefault(text, node.lineno)
    return found


def data_lines(path: Path) -> dict[str, int]:
    """Lines of a data file, and each tab- or comma-separated field (the text of ``label<TAB>text`` rows)."""
    found: dict[str, int] = {}
    for i, line in enumerate(_read(path).splitlines(), 1):
        for part in [line, *re.split(r"\t|,(?=\S)", line)]:
            if len(text := " ".join(part.split())) >= MIN_DATA_LINE:
                found.setdefault(text, i)
    return found


def shipped_files(exercise: Exercise) -> list[Path]:
    """What a pack ships of ``exercise``: exercise.toml, the stub, and the checks without hidden/."""
    hidden = exercise.hidden_checks.resolve()
    checks = [p for p in files(exercise.checks_dir) if not p.resolve().is_relative_to(hidden)]
    return [exercise.checks_dir.parent / "exercise.toml", *files(exercise.stub_dir), *checks]


def core_files() -> list[Path]:
    return sorted(p for p in CORE.rglob("*.py") if "__pycache__" not in p.parts and "_data" not in p.parts)


@dataclass
class Secrets:
    """What must not be in a pack: token runs, literals and data lines, each with where it comes from."""

    grams: dict[tuple[str, ...], str]
    strings: dict[str, str]

    def __len__(self) -> int:
        return len(self.grams) + len(self.strings)


class PublicIndex:
    """Every token run and the text of the public material, indexed once: which exercise shows what."""

    def __init__(self, exercises: list[Exercise]) -> None:
        self.grams: dict[tuple[str, ...], set[str]] = {}  # run -> owners: "core", "pub:<id>", "ship:<id>"
        self.texts: dict[str, str] = {}
        self._index("core", core_files())
        for ex in exercises:
            own = [ex.checks_dir.parent / "exercise.toml", *files(ex.stub_dir)]
            self._index(f"own:{ex.id}", own)
            self._index(f"pub:{ex.id}", files(ex.public_checks))
            self._index(f"ship:{ex.id}", [p for p in shipped_files(ex) if p not in own
                                          and not p.resolve().is_relative_to(ex.public_checks.resolve())])

    def _index(self, owner: str, paths: list[Path]) -> None:
        for path in paths:
            for gram in ngrams(path):
                self.grams.setdefault(gram, set()).add(owner)
        self.texts[owner] = "\n".join(" ".join(_read(p).split()) for p in paths)

    def owners(self, secret: tuple[str, ...] | str) -> set[str]:
        if isinstance(secret, tuple):
            return self.grams.get(secret, set())
        return {owner for owner, text in self.texts.items() if secret in text}


def _public_for(kind: str, ex_id: str, owners: set[str]) -> bool:
    """Whether ``owners`` (of a secret of ``ex_id`` of this ``kind``) show it publicly."""
    if "core" in owners or f"own:{ex_id}" in owners:
        return True
    if kind == "data":
        return False
    others = any(not o.endswith(f":{ex_id}") for o in owners)
    # the exercise's own conftest and helpers are no evidence: they are where copies land
    return others or f"pub:{ex_id}" in owners


def collect(exercises: list[Exercise]) -> Secrets:
    index = PublicIndex(exercises)
    secrets = Secrets({}, {})
    for ex in exercises:
        for path in files(ex.reference_dir):
            _add(secrets, index, ex.id, path, "reference")
        for path in files(ex.hidden_checks):
            _add(secrets, index, ex.id, path, "hidden" if path.suffix == ".py" else "data")
    return secrets


def _add(secrets: Secrets, index: PublicIndex, ex_id: str, path: Path, kind: str) -> None:
    where = _short(path)
    if kind != "data":
        for gram, line in ngrams(path).items():
            if gram not in secrets.grams and not _public_for(kind, ex_id, index.owners(gram)):
                secrets.grams[gram] = f"{where}:{line}"
    found = data_lines(path) if kind == "data" else literals(path)
    for text, line in found.items():
        if text not in secrets.strings and not _public_for(kind, ex_id, index.owners(text)):
            secrets.strings[text] = f"{where}:{line}"


def _short(path: Path) -> str:
    parts = path.resolve().parts
    for anchor in ("exercises", "reference"):
        if anchor in parts:
            return "/".join(parts[len(parts) - 1 - parts[::-1].index(anchor):])
    return str(path)


def find_leaks(pack: Path, exercises: list[Exercise]) -> tuple[list[Leak], int]:
    """Every place in ``pack`` holding a secret of ``exercises``, and how many secrets were searched."""
    secrets = collect(exercises)
    leaks: list[Leak] = []
    for path in files(pack):
        rel = path.relative_to(pack).as_posix()
        for gram, line in ngrams(path).items():
            if gram in secrets.grams:
                leaks.append(Leak(f"{rel}:{line}", secrets.grams[gram], " ".join(gram)))
                break  # one per file is enough to refuse; the first names the place
        text = " ".join(_read(path).split())
        for secret, where in secrets.strings.items():
            if secret in text:
                leaks.append(Leak(rel, where, secret))
                break
    return leaks, len(secrets)

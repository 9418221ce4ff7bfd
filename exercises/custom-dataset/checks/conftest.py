"""Shared fixtures for the custom-dataset checks (trusted side).

Input files are written here and handed to the sandbox read-only (``job_files``); the student's
``build_dataset`` saves its DatasetDict into the shared folder, and :func:`load_saved` reads it back with
``datasets.load_from_disk`` after refusing anything that is not a plain file or folder (a link could
point the trusted side at files of its own).  Saved data are Arrow tables and JSON: nothing is unpickled.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from grader.testing import expect_type

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

LABELS = ("business", "politics", "sport", "world")
COLUMNS = ("id", "title", "text", "label", "source")
SPLITS = ("train", "validation", "test")
_COUNTER = itertools.count()


def expected_features() -> Any:
    """The stub's schema, from its serialised form (what dataset_info.json records)."""
    import datasets

    string = {"dtype": "string", "_type": "Value"}
    return datasets.Features.from_dict({"id": string, "title": string, "text": string,
                                        "label": {"names": list(LABELS), "_type": "ClassLabel"}, "source": string})


def hand_over(job_files: Any, folder: str, files: dict[str, bytes]) -> tuple[str, str]:
    """Write ``files`` (relative path -> bytes) under ``folder``: (its host path for the reference, its path as
    the student sees it)."""
    for rel, data in files.items():
        job_files.write(f"{folder}/{rel}", data)
    return str(Path(job_files.root) / "in" / folder), job_files.path(folder)


def out_dir(job_files: Any, name: str) -> tuple[Path, str]:
    """A fresh (host path, sandbox path) pair in the shared folder for one save_to_disk."""
    host, inside = job_files.shared_dir()
    unique = f"{name}-{next(_COUNTER)}"
    return Path(host) / unique, f"{inside}/{unique}"


def load_saved(host: Path) -> Any:
    """The DatasetDict the student saved at ``host``; fail (never crash) when it is not a loadable one."""
    if not host.is_dir():
        raise AssertionError("build_dataset did not save anything at out_dir: call DatasetDict.save_to_disk(out_dir)")
    for path in host.rglob("*"):
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise AssertionError(f"the saved dataset contains {path.name}, which is not a plain file: save with "
                                 "DatasetDict.save_to_disk(out_dir) only")
    from datasets import DatasetDict, load_from_disk

    try:
        loaded = load_from_disk(str(host))
    except Exception as exc:  # the files are the student's data: unreadable ones are the student's failure
        raise AssertionError(f"datasets.load_from_disk could not read what build_dataset saved ({type(exc).__name__}: "
                             f"{exc}): save a DatasetDict with save_to_disk(out_dir), every split non-empty") from None
    if not isinstance(loaded, DatasetDict):
        raise AssertionError(f"out_dir holds a {type(loaded).__name__}, not a DatasetDict of the three splits")
    return loaded


def as_rows(loaded: Any) -> dict[str, list[dict[str, Any]]]:
    """split -> rows with the label as its name (the ClassLabel decoded)."""
    out = {}
    for split, ds in loaded.items():
        names = ds.features["label"].names if hasattr(ds.features.get("label"), "names") else None
        rows = ds.to_list()
        for row in rows:
            if names is not None and isinstance(row.get("label"), int):
                row["label"] = names[row["label"]]
        out[split] = rows
    return out


def expect_report(value: Any) -> dict[str, Any]:
    expect_type(value, dict, "build_dataset(...)")
    for key in ("counts", "duplicates", "problems"):
        if key not in value:
            raise AssertionError(f"build_dataset should return a dict with 'counts', 'duplicates' and 'problems': "
                                 f"'{key}' is missing")
    expect_type(value["counts"], dict, "build_dataset(...)['counts']")
    expect_type(value["duplicates"], (list, tuple), "build_dataset(...)['duplicates']")
    expect_type(value["problems"], (list, tuple), "build_dataset(...)['problems']")
    return value


def expect_records(value: Any, what: str) -> dict[str, list[dict[str, Any]]]:
    expect_type(value, dict, what)
    for key in ("records", "problems"):
        if key not in value:
            raise AssertionError(f"{what} should return {{'records': [...], 'problems': [...]}}: '{key}' is missing")
        expect_type(value[key], (list, tuple), f"{what}[{key!r}]")
    for record in value["records"]:
        expect_type(record, dict, f"each record of {what}")
    return value


def _hint(got: dict[str, Any], want: dict[str, Any], fields: list[str]) -> str:
    source = str(want.get("source", ""))
    if got.get("source") != source:
        return ("records come in visiting order (files sorted by relative path, rows in file order), bad rows left "
                "out and reported")
    if "id" in fields and not got.get("id"):
        return "the first column is 'id' once the byte-order mark is gone: decode with 'utf-8-sig'"
    if "text" in fields and "latin1" in source:
        return "this file is not UTF-8: decode it as latin-1 (never with errors='replace')"
    if "text" in fields and source.endswith(".html"):
        return ("the text is the <p> paragraphs inside <article> only, whitespace collapsed, joined with a blank line "
                "(no navigation, footer or script)")
    if "text" in fields and source.endswith(".csv"):
        return "parse CSV with the csv module: a quoted field may hold commas, doubled quotes and line breaks"
    if "label" in fields:
        return "strip and lower-case the label"
    return "strip text and title; keep everything else as it is"


def first_record_difference(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> str:
    """Advice, then where two record lists first differ: which record, which field."""
    for index, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            fields = [k for k in w if g.get(k) != w[k]] or sorted(set(g) ^ set(w))
            shown = "; ".join(f"{k}: got {g.get(k)!r:.90}, expected {w.get(k)!r:.90}" for k in fields[:2])
            return (f"{_hint(g, w, fields)}\nrecord {index} ({w.get('source')}, id {w.get('id')}) differs in "
                    f"{', '.join(fields)}: {shown}")
    return (f"{len(got)} records, expected {len(want)} (the first {min(len(got), len(want))} agree): every good row of "
            "every .csv, .jsonl and .html file is a record; bad rows are reported, not kept")


@pytest.fixture(scope="session")
def cd() -> SimpleNamespace:
    """Helpers for the custom-dataset checks."""
    return SimpleNamespace(LABELS=LABELS, COLUMNS=COLUMNS, SPLITS=SPLITS, expected_features=expected_features,
                           hand_over=hand_over, out_dir=out_dir, load_saved=load_saved, as_rows=as_rows,
                           expect_report=expect_report, expect_records=expect_records,
                           first_record_difference=first_record_difference)

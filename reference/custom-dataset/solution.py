"""A custom text-classification dataset from CSV, JSONL and saved HTML pages (reference)."""

from __future__ import annotations

import csv
import io
import json
import random
import re
import unicodedata
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

LABELS = ("business", "politics", "sport", "world")
COLUMNS = ("id", "title", "text", "label", "source")
SPLITS = ("train", "validation", "test")


def features() -> Any:
    from datasets import ClassLabel, Features, Value

    return Features({"id": Value("string"), "title": Value("string"), "text": Value("string"),
                     "label": ClassLabel(names=list(LABELS)), "source": Value("string")})


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def normalise_key(text: str) -> str:
    return " ".join(re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold()))


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.title: list[str] = []
        self.paragraphs: list[str] = []
        self.article = False
        self.depth = 0
        self.skip = 0
        self.in_title = False
        self.current: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "meta":
            values = dict(attrs)
            if values.get("name") and values.get("content") is not None:
                self.meta[values["name"].lower()] = values["content"] or ""
        elif tag == "title":
            self.in_title = True
        elif tag in ("script", "style"):
            self.skip += 1
        elif tag == "article":
            self.article = True
            self.depth += 1
        elif tag == "p" and self.depth:
            self.current = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        elif tag in ("script", "style"):
            self.skip = max(0, self.skip - 1)
        elif tag == "article":
            self.depth = max(0, self.depth - 1)
        elif tag == "p" and self.current is not None:
            text = " ".join("".join(self.current).split())
            if text:
                self.paragraphs.append(text)
            self.current = None

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.in_title:
            self.title.append(data)
        if self.current is not None:
            self.current.append(data)


def extract_article(html: str) -> dict[str, Any]:
    page = _Page()
    page.feed(html)
    page.close()
    return {"id": page.meta.get("article-id"), "title": " ".join("".join(page.title).split()),
            "category": page.meta.get("category"), "has_article": page.article,
            "text": "\n\n".join(page.paragraphs)}


def _record(rid: Any, title: Any, text: Any, label: Any, source: str, line: int,
            problems: list[dict[str, Any]]) -> dict[str, Any] | None:
    text = text.strip() if isinstance(text, str) else ""
    label = label.strip().lower() if isinstance(label, str) else ""
    if not text:
        problems.append({"file": source, "line": line, "reason": "missing_text"})
        return None
    if label not in LABELS:
        problems.append({"file": source, "line": line, "reason": "unknown_label"})
        return None
    title = title.strip() if isinstance(title, str) else ""
    return {"id": str(rid).strip() if rid is not None else "", "title": title, "text": text, "label": label,
            "source": source}


def _csv(text: str, source: str, problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return []
    out = []
    while True:
        start = reader.line_num + 1
        row = next(reader, None)
        if row is None:
            return out
        if not row:
            continue
        if len(row) != len(header):
            problems.append({"file": source, "line": start, "reason": "wrong_field_count"})
            continue
        values = dict(zip(header, row, strict=True))
        record = _record(values.get("id"), values.get("title"), values.get("text"), values.get("category"), source,
                         start, problems)
        if record:
            out.append(record)


def _jsonl(text: str, source: str, problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            problems.append({"file": source, "line": number, "reason": "invalid_json"})
            continue
        record = _record(obj.get("id"), obj.get("headline"), obj.get("body"), obj.get("section"), source, number,
                         problems)
        if record:
            out.append(record)
    return out


def _html(text: str, source: str, problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    page = extract_article(text)
    if not page["has_article"]:
        problems.append({"file": source, "line": 1, "reason": "no_article"})
        return []
    record = _record(page["id"], page["title"], page["text"], page["category"], source, 1, problems)
    return [record] if record else []


READERS = {".csv": _csv, ".jsonl": _jsonl, ".html": _html}


def read_records(data_dir: str) -> dict[str, list[dict[str, Any]]]:
    root = Path(data_dir)
    records: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    for path in sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix()):
        reader = READERS.get(path.suffix.lower())
        if reader is not None:
            records += reader(decode(path.read_bytes()), path.relative_to(root).as_posix(), problems)
    return {"records": records, "problems": problems}


def deduplicate(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    seen: set[str] = set()
    kept, dropped = [], []
    for record in records:
        key = normalise_key(record["text"])
        if key in seen:
            dropped.append(record["id"])
        else:
            seen.add(key)
            kept.append(record)
    return kept, dropped


def split_indices(n: int, seed: int) -> dict[str, list[int]]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_train, n_val = int(0.8 * n), int(0.1 * n)
    parts = {"train": order[:n_train], "validation": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
    return {name: sorted(idx) for name, idx in parts.items()}


def build_dataset(data_dir: str, out_dir: str, seed: int = 0) -> dict[str, Any]:
    from datasets import Dataset, DatasetDict

    loaded = read_records(data_dir)
    kept, dropped = deduplicate(loaded["records"])
    parts = split_indices(len(kept), seed)
    splits = DatasetDict({
        name: Dataset.from_dict({c: [kept[i][c] for i in idx] for c in COLUMNS}, features=features())
        for name, idx in parts.items()
    })
    splits.save_to_disk(out_dir)
    return {"counts": {name: len(idx) for name, idx in parts.items()}, "duplicates": dropped,
            "problems": loaded["problems"]}

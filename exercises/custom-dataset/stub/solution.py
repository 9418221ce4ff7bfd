"""A custom dataset for text classification, from CSV, JSON Lines and saved HTML news pages.

Real training data rarely arrives as one clean file. Here a folder (``data_dir``, read-only) holds news
articles in three formats, with the usual problems: a byte-order mark, a latin-1 file among UTF-8 ones,
quoted CSV fields that contain commas and line breaks, a CSV exported by pandas with its index column,
broken JSON lines, pages without an article, unknown labels, and the same article twice in slightly
different forms. You turn it into a ``datasets.DatasetDict`` (https://huggingface.co/docs/datasets) with
a stated schema and train/validation/test splits in which no article appears in two splits.

THE BOUNDARY. A DatasetDict cannot cross the sandbox boundary as an object, so ``build_dataset`` SAVES it
with ``DatasetDict.save_to_disk(out_dir)`` (a folder the checks can read; its path is given) and
RETURNS a plain-data report. The checks load the folder with ``datasets.load_from_disk`` and compare.

THE FILES (every file under data_dir whose name ends in .csv, .jsonl or .html, in sub-folders too; any
other file is ignored). Visit them in the order of their path relative to data_dir, as a POSIX string
(``sorted(..., key=lambda p: p.relative_to(root).as_posix())``); records keep the order of their file.
``source`` is that relative path ("articles.csv", "pages/p017.html").

* Encoding: decode each file's BYTES as UTF-8 with ``"utf-8-sig"`` (so a byte-order mark does not become
  part of the first column's name); if that raises UnicodeDecodeError, the file is latin-1 (ISO-8859-1):
  decode it as such. Never ``errors="ignore"`` or ``"replace"``: "café" must stay "café".
* CSV (``.csv``): the first row is the header; the columns used are ``id``, ``title``, ``text`` and
  ``category`` (others, such as the unnamed index column pandas writes, are ignored). Parse with the
  ``csv`` module on the decoded text (``csv.reader(io.StringIO(text, newline=""))``): a quoted field may
  contain commas, doubled quotes and line breaks. Empty rows are skipped silently.
* JSON Lines (``.jsonl``): one JSON object per line, fields ``id``, ``headline`` (the title), ``body`` (the
  text) and ``section`` (the label). Blank lines are skipped silently.
* HTML (``.html``): one saved news page per file; see ``extract_article``. The label is the page's
  ``<meta name="category">``, the id its ``<meta name="article-id">``, the title its ``<title>``.

CLEANING A RECORD: ``text`` and ``title`` are stripped (``.strip()``); the label is stripped and
lower-cased and must be one of LABELS. Nothing else is changed (line breaks inside a text stay).

BAD ROWS are REPORTED, never dropped silently: ``{"file": source, "line": int, "reason": str}`` with
``line`` the 1-based physical line where the record STARTS (the CSV header is line 1; a quoted field with
line breaks makes a record span several lines: report its first; an HTML page is line 1). The reasons,
the first that applies:
    "wrong_field_count"  a CSV row with more or fewer fields than the header;
    "invalid_json"       a JSONL line that is not a JSON object;
    "no_article"         an HTML page without an <article> element;
    "missing_text"       the text is missing or empty after stripping;
    "unknown_label"      the label is missing or not in LABELS.

DE-DUPLICATION happens BEFORE splitting (otherwise copies of one article land in train and test and the
test score measures memorisation). Two records are duplicates when their ``normalise_key`` of the text is
equal; keep the FIRST in visiting order.

SPLITS: with n the number of kept records (in visiting order), shuffle the indices with a generator of
your own, ``order = list(range(n)); random.Random(seed).shuffle(order)`` (never the global ``random``:
the same seed must give the same splits in every run); the first ``int(0.8 * n)`` are "train", the next
``int(0.1 * n)`` "validation", the rest "test". Inside each split the records keep their visiting order.

THE SCHEMA (exactly these columns, in this order, and no other: build each split with
``Dataset.from_dict(columns, features=features())``, or with
``Dataset.from_pandas(df, features=features(), preserve_index=False)``: a plain ``from_pandas`` of a
shuffled or filtered frame adds an ``__index_level_0__`` column, and without ``features`` strings become
``large_string`` and the label stays a string):
    id: Value("string"), title: Value("string"), text: Value("string"),
    label: ClassLabel(names=["business", "politics", "sport", "world"]), source: Value("string").
"""

from __future__ import annotations

from typing import Any

LABELS = ("business", "politics", "sport", "world")
COLUMNS = ("id", "title", "text", "label", "source")
SPLITS = ("train", "validation", "test")


def features() -> Any:
    """The ``datasets.Features`` of the schema above (import datasets inside: it is slow to import)."""
    raise NotImplementedError


def decode(data: bytes) -> str:
    """A file's bytes as text: UTF-8 (a leading byte-order mark removed), else latin-1."""
    raise NotImplementedError


def normalise_key(text: str) -> str:
    """The de-duplication key: NFKC, case-folded, only the word characters, single spaces.

    ``" ".join(re.findall(r"\\w+", unicodedata.normalize("NFKC", text).casefold()))``: so "Hello,  World!",
    "hello world" and "ＨＥＬＬＯ world" have one key (NFKC maps full-width letters to plain ones).
    """
    raise NotImplementedError


def extract_article(html: str) -> dict[str, Any]:
    """The parts of a saved news page, with an HTML parser (``html.parser.HTMLParser``, or lxml).

    Returns ``{"id": str | None, "title": str, "category": str | None, "has_article": bool, "text": str}``:
    * id, category: the ``content`` of ``<meta name="article-id">`` and ``<meta name="category">`` (None
      when the page has none);
    * title: the text of ``<title>``, whitespace runs collapsed to one space, stripped;
    * has_article: whether the page has an ``<article>`` element;
    * text: the ``<p>`` paragraphs INSIDE ``<article>`` only (not the navigation, header or footer), each
      with its whole text (inline tags such as <b> or <a> kept as their text, entities decoded,
      ``<script>`` and ``<style>`` contents left out), whitespace runs collapsed to one space and
      stripped; empty paragraphs dropped; the paragraphs joined with "\\n\\n". "" when there are none.
    """
    raise NotImplementedError


def read_records(data_dir: str) -> dict[str, list[dict[str, Any]]]:
    """Every record of every file, cleaned, and the bad rows.

    Returns ``{"records": [{"id", "title", "text", "label", "source"}, ...], "problems": [{"file", "line",
    "reason"}, ...]}``, both in visiting order; labels as strings here (e.g. "sport"), ids as strings.
    """
    raise NotImplementedError


def deduplicate(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """(the records kept, in order; the ids of those dropped as duplicates of an earlier one, in order)."""
    raise NotImplementedError


def split_indices(n: int, seed: int) -> dict[str, list[int]]:
    """{"train": [...], "validation": [...], "test": [...]}: the indices 0..n-1 of each split, ascending."""
    raise NotImplementedError


def build_dataset(data_dir: str, out_dir: str, seed: int = 0) -> dict[str, Any]:
    """Read, de-duplicate, split and save the DatasetDict to ``out_dir`` (``save_to_disk``); report.

    Returns ``{"counts": {"train": int, "validation": int, "test": int}, "duplicates": [dropped ids],
    "problems": [...]}``.
    """
    raise NotImplementedError

"""Hidden checks of the custom dataset on a folder made from the Lee news corpus and the grading seed.

The folder spreads real news articles over five kinds of file and plants what real exports contain: a
byte-order mark, a latin-1 file, quoted fields with commas, quotes and line breaks, a pandas index column,
broken JSON lines, pages without an article, unknown labels, and near duplicates across files.
"""

import csv
import io
import json
import random
from pathlib import Path

import pytest

from grader.testing import expect_type, record

KEYWORDS = {
    "sport": ("cricket", "match", "rugby", "olympic", "coach", "tennis", "wicket", "football", "season", "cup"),
    "business": ("shares", "profit", "market", "company", "bank", "dollar", "economy", "investors", "airline"),
    "politics": ("minister", "government", "election", "senator", "party", "parliament", "labor", "opposition"),
}
LATIN1 = ["Café owners in Zürich", "São Paulo", "£5 million", "naïve", "Ångström", "© AAP", "Señor Muñoz"]


def category(text):
    """A label for a news article from its words (the data only need a plausible, fixed label)."""
    words = text.lower()
    scores = {label: sum(words.count(k) for k in keys) for label, keys in KEYWORDS.items()}
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] else "world"


def _near_duplicate(rng, text):
    """The same words in another form: case, spacing, punctuation between words, full-width letters."""
    words = text.split(" ")
    kind = rng.randrange(4)
    if kind == 0:
        return text.upper()
    if kind == 1:
        return "  " + "   ".join(words) + " \n"
    if kind == 2:
        return text.replace(", ", " ").replace(". ", " ... ")
    first = words[0]
    return " ".join([first.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)}), *words[1:]])


def _csv_bytes(header, rows, encoding="utf-8", bom=False, terminator="\r\n"):
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator=terminator)
    writer.writerow(header)
    writer.writerows(rows)
    return (("\ufeff" if bom else "") + buffer.getvalue()).encode(encoding)


def _page(article_id, title, label, paragraphs, rng):
    noise = rng.choice(["<nav><p>Home | World | Sport</p></nav>", "<header><p>Latest news</p></header>", ""])
    body = "".join(rng.choice(["<p>{}</p>", "<P class='lead'>{}</P>", "<p>\n  {}\n</p>"]).format(
        p.replace("&", "&amp;").replace(" said ", " <b>said</b> ", 1)) for p in paragraphs)
    meta = (f'<meta name="category" content="{label}">' if label else "")
    return (f"<!DOCTYPE html><html><head><title>{title}</title>{meta}"
            f'<meta name="article-id" content="{article_id}"><script>var ads = "<p>buy</p>";</script></head>'
            f"<body>{noise}<article><h1>{title}</h1>{body}<script>track();</script></article>"
            "<footer><p>Copyright</p></footer></body></html>")


def hidden_folder(lee_dir, seed, n_articles):
    """(files, facts): the folder's files as bytes, and what was planted where (for the messages)."""
    rng = random.Random(f"custom-dataset/{seed}")
    docs = [d.strip() for d in (Path(lee_dir) / "train.txt").read_text(encoding="utf-8").splitlines() if d.strip()]
    chosen = rng.sample(docs, n_articles)
    articles = []
    for i, text in enumerate(chosen):
        words = text.split()
        articles.append({"id": f"lee-{seed % 1000:03d}-{i:03d}", "title": " ".join(words[:6]), "text": text,
                         "label": category(text)})
    parts = {"latin": articles[:6], "csv": articles[6:22], "export": articles[22:30], "jsonl": articles[30:45],
             "html": articles[45:]}
    facts = {"latin1": [], "quoted": [], "duplicates": []}
    latin_rows = []
    for a in parts["latin"]:
        a["text"] = f"{rng.choice(LATIN1)}: {a['text']}"
        latin_rows.append([a["id"], a["title"], a["text"], a["label"]])
        facts["latin1"].append(a["id"])
    csv_rows = []
    for j, a in enumerate(parts["csv"]):
        text = a["text"]
        if j % 3 == 0:  # line breaks and quotes inside a quoted field
            text = a["text"] = text.replace(". ", '.\n"Quote," he said.\n', 1)
            facts["quoted"].append(a["id"])
        csv_rows.append([a["id"], a["title"], text, rng.choice([a["label"], a["label"].upper(), f" {a['label']} "])])
    csv_rows.insert(3, ["bad-1", "No text", "   ", "sport"])
    csv_rows.insert(7, ["bad-2", "Weather", "Rain is expected\nall week.", "weather"])  # spans two lines
    csv_rows.insert(9, ["bad-3", "Too many", "text", "world", "surplus"])
    csv_rows.insert(9, [])  # a blank line (skipped silently) just before a bad row: its line number counts it
    export_rows = [[str(rng.randrange(1000)), a["id"], a["title"], a["text"], a["label"]] for a in parts["export"]]
    lines = [json.dumps({"id": a["id"], "headline": a["title"], "body": a["text"], "section": a["label"]},
                        ensure_ascii=rng.random() < 0.5) for a in parts["jsonl"]]
    lines[2:2] = ["", '{"id": "bad-4", "headline": "cut off", "body": "half a rec', '["not", "an", "object"]',
                  json.dumps({"id": "bad-5", "headline": "no body", "section": "world"})]
    files = {
        "archive_latin1.csv": _csv_bytes(["id", "title", "text", "category"], latin_rows, "latin-1", terminator="\n"),
        "articles.csv": _csv_bytes(["id", "title", "text", "category"], csv_rows, bom=True),
        "export.csv": _csv_bytes(["", "id", "title", "text", "category"], export_rows),
        "feed.jsonl": ("\n".join(lines) + "\n").encode("utf-8"),
        "README.md": b"# News export\nFiles as delivered by the partners.\n",
    }
    for k, a in enumerate(parts["html"]):
        paragraphs = [s.strip() + "." for s in a["text"].split(". ") if s.strip()]
        paragraphs = [" ".join(paragraphs[i:i + 2]).replace("..", ".") for i in range(0, len(paragraphs), 2)]
        files[f"pages/{a['id']}.html"] = _page(a["id"], a["title"], a["label"], paragraphs, rng).encode("utf-8")
        a["text"] = "\n\n".join(paragraphs)
        if k == 0:
            files["pages/index.html"] = b"<html><head><title>Index</title></head><body><p>All news</p></body></html>"
        if k == 1:
            files[f"pages/{a['id']}-print.html"] = _page(f"{a['id']}-p", a["title"], "", paragraphs, rng).encode()
    # near duplicates, each later in the visiting order than its original
    later = {"latin": ["articles.csv", "feed.jsonl"], "csv": ["export.csv", "feed.jsonl"], "export": ["feed.jsonl"]}
    extra_jsonl, extra_export = [], []
    for source, targets in later.items():
        for a in rng.sample(parts[source], 2):
            target = rng.choice(targets)
            copy = {"id": f"{a['id']}-copy", "title": a["title"], "text": _near_duplicate(rng, a["text"]),
                    "label": a["label"]}
            facts["duplicates"].append(copy["id"])
            if target == "feed.jsonl":
                extra_jsonl.append(json.dumps({"id": copy["id"], "headline": copy["title"], "body": copy["text"],
                                               "section": copy["label"]}))
            elif target == "export.csv":
                extra_export.append(["99", copy["id"], copy["title"], copy["text"], copy["label"]])
            else:
                csv_rows.append([copy["id"], copy["title"], copy["text"], copy["label"]])
    files["articles.csv"] = _csv_bytes(["id", "title", "text", "category"], csv_rows, bom=True)
    files["export.csv"] = _csv_bytes(["", "id", "title", "text", "category"], export_rows + extra_export)
    files["feed.jsonl"] = ("\n".join(lines + extra_jsonl) + "\n").encode("utf-8")
    return files, facts


@pytest.fixture(scope="module")
def folder(job_files, assets, seed, targets, cd):
    files, facts = hidden_folder(assets["lee-corpus"], seed, int(targets["hidden_articles"]))
    host, inside = cd.hand_over(job_files, f"hidden-{seed}", files)
    return host, inside, facts


@pytest.fixture(scope="module")
def expected(reference, folder, seed):
    loaded = reference.read_records(folder[0])
    kept, dropped = reference.deduplicate(loaded["records"])
    return {"records": loaded["records"], "problems": loaded["problems"], "kept": kept, "dropped": dropped,
            "parts": reference.split_indices(len(kept), seed % 1000)}


def _records(student, folder, cd):
    return cd.expect_records(student.read_records(folder[1]), "read_records(data_dir)")


def _upstream(student, folder, expected, cd):
    """Advice when read_records is already wrong: the later steps cannot be right then."""
    if _records(student, folder, cd)["records"] != expected["records"]:
        return "read_records already differs (see test_hidden_records_match_reference), so its records do too: "
    return ""


def _build(student, folder, job_files, cd, seed, name="hidden"):
    host, inside = cd.out_dir(job_files, name)
    report = cd.expect_report(student.build_dataset(folder[1], inside, seed=seed))
    return report, cd.load_saved(host)


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
def test_hidden_records_match_reference(student, folder, expected, cd):
    """every record of the hidden folder's CSV, latin-1, exported, JSONL and HTML files, cleaned, in order"""
    got = _records(student, folder, cd)["records"]
    assert got == expected["records"], cd.first_record_difference(got, expected["records"])
    record("records", len(got))


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_hidden_bad_rows_reported(student, folder, expected, cd):
    """each bad row is reported with its file, the line it starts on and the reason, none dropped silently"""
    got = list(_records(student, folder, cd)["problems"])
    want = expected["problems"]
    for index, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            hint = ("the line where the record STARTS (a quoted field with line breaks spans several lines; csv's "
                    "line_num after a row is its last line)" if isinstance(g, dict) and g.get("file") == w["file"]
                    and g.get("reason") == w["reason"] else "the reason that applies first, in the stub's order")
            raise AssertionError(f"problem {index} is {g}, expected {w}: {hint}")
    assert len(got) == len(want), (
        f"{len(got)} problems reported, expected {len(want)}: report every bad row (wrong field count, invalid JSON, "
        "page without an article, missing text, unknown label); skip only blank lines silently")


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_hidden_latin1_and_bom(student, folder, cd):
    """the latin-1 file decodes to the right characters; the BOM is not part of the first column's name"""
    records = _records(student, folder, cd)["records"]
    by_id = {r.get("id"): r for r in records}
    latin = [r for r in records if r.get("source") == "archive_latin1.csv"]
    assert len(latin) == len(folder[2]["latin1"]), (
        f"archive_latin1.csv gave {len(latin)} records, expected {len(folder[2]['latin1'])}: it is not UTF-8; decode "
        "it as latin-1 when UTF-8 decoding fails")
    for r in latin:
        text = r.get("text", "")
        assert "\ufffd" not in text and not any(m in text for m in ("Ã", "Â")), (
            f"the latin-1 text {text[:40]!r} was decoded wrongly: decode as latin-1, never with errors='replace'")
    bom = [r for r in records if r.get("source") == "articles.csv"]
    assert bom and all(r.get("id") and not str(r["id"]).startswith("\ufeff") for r in bom), (
        "articles.csv starts with a byte-order mark: decode with 'utf-8-sig' so the first column is named 'id' (its "
        "records have no id otherwise)")
    assert all(i in by_id for i in folder[2]["latin1"]), "the latin-1 records should keep their ids"


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_hidden_quoted_fields(student, folder, expected, cd):
    """quoted CSV fields with commas, doubled quotes and line breaks arrive whole"""
    records = {r.get("id"): r for r in _records(student, folder, cd)["records"]}
    want = {r["id"]: r for r in expected["records"]}
    for rid in folder[2]["quoted"]:
        got = records.get(rid, {}).get("text")
        assert got == want[rid]["text"], (
            f"the text of {rid} (a quoted field with a comma, doubled quotes and line breaks) is {got!r:.80}: parse "
            "the "
            "CSV with the csv module on the decoded text (csv.reader(io.StringIO(text, newline=''))), not line by line")


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_hidden_schema_and_columns(student, folder, job_files, cd, seed):
    """the saved DatasetDict has the three splits and exactly the stated Features: a ClassLabel, no index column"""
    _, loaded = _build(student, folder, job_files, cd, seed % 1000)
    assert sorted(loaded) == sorted(cd.SPLITS), f"the splits should be {cd.SPLITS}, got {sorted(loaded)}"
    for split in cd.SPLITS:
        columns = loaded[split].column_names
        extra = [c for c in columns if c not in cd.COLUMNS]
        index_like = any("index" in c or c.startswith("Unnamed") or c == "" for c in extra)
        assert not extra, (f"the {split} split has the extra columns {extra}: "
                           + ("from_pandas kept the frame's index: pass preserve_index=False" if index_like else
                              "keep only id, title, text, label and source"))
        assert loaded[split].features == cd.expected_features(), (
            f"the {split} split's features are {loaded[split].features}, expected {cd.expected_features()}: label must "
            "be a ClassLabel with the names in LABELS' order, the other columns Value('string')")


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_hidden_counts_and_duplicates(student, folder, expected, job_files, cd, seed):
    """near duplicates are dropped (the first kept) before splitting; counts add up to the distinct articles"""
    report, loaded = _build(student, folder, job_files, cd, seed % 1000)
    dropped = list(report["duplicates"])
    assert dropped == expected["dropped"], (
        f"{_upstream(student, folder, expected, cd)}duplicates {dropped}, expected {expected['dropped']}: two "
        "records are duplicates when normalise_key of their "
        "texts is equal (case, spacing, punctuation and full-width letters do not count); keep the FIRST in visiting "
        "order")
    sizes = {split: loaded[split].num_rows for split in cd.SPLITS}
    want = {split: len(idx) for split, idx in expected["parts"].items()}
    assert sizes == want and report["counts"] == want, (
        f"split sizes {sizes} (reported {report['counts']}), expected {want}: 80/10/10 of the {len(expected['kept'])} "
        "records left after de-duplication")


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_hidden_no_leakage(student, reference, folder, job_files, cd, seed):
    """no article (or near duplicate of one) is in two splits: the normalised texts of the splits are disjoint"""
    _, loaded = _build(student, folder, job_files, cd, seed % 1000)
    rows = cd.as_rows(loaded)
    keys = {split: [reference.normalise_key(r["text"]) for r in rows.get(split, [])] for split in cd.SPLITS}
    for split in cd.SPLITS:
        assert len(set(keys[split])) == len(keys[split]), (
            f"the {split} split holds the same article twice (after normalisation): de-duplicate with normalise_key")
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        shared = set(keys[a]) & set(keys[b])
        assert not shared, (
            f"{len(shared)} articles are in both {a} and {b}: de-duplicate BEFORE splitting, on normalise_key")


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_hidden_deterministic_splits(student, folder, job_files, cd, seed):
    """the same seed gives the same splits in another run; another seed gives other splits"""
    first = cd.as_rows(_build(student, folder, job_files, cd, seed % 1000)[1])
    again = cd.as_rows(_build(student, folder, job_files, cd, seed % 1000)[1])
    assert first == again, (
        "two builds with the same seed gave different splits: shuffle with random.Random(seed), never the global "
        "random module or an unseeded generator")
    other = cd.as_rows(_build(student, folder, job_files, cd, seed % 1000 + 1)[1])
    assert [r["id"] for r in other["train"]] != [r["id"] for r in first["train"]], (
        "seeds seed and seed + 1 gave the same train split: the shuffle must use the seed argument")


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_hidden_splits_match_reference(student, folder, expected, job_files, cd, seed):
    """each split holds exactly the records of the stub's seeded 80/10/10 split, in visiting order, labels right"""
    rows = cd.as_rows(_build(student, folder, job_files, cd, seed % 1000)[1])
    for split, idx in expected["parts"].items():
        want = [expected["kept"][i] for i in idx]
        got = rows.get(split, [])
        expect_type(got, list, split)
        assert [r.get("id") for r in got] == [w["id"] for w in want], (
            f"{_upstream(student, folder, expected, cd)}the {split} split holds other records (or another order) "
            "than the stub's split: shuffle list(range(n)) "
            "with random.Random(seed).shuffle, cut at int(0.8 n) and int(0.1 n), keep visiting order inside a split")
        assert got == want, f"the {split} split's rows differ from the records: {cd.first_record_difference(got, want)}"

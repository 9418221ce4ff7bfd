"""Public checks of the custom dataset on a small folder of every kind of input file."""

import pytest

from grader.testing import expect_type, record

PAGE = """<!DOCTYPE html>
<HTML><head><title>  Storm hits
 the coast </title><meta name="category" content=" World "><meta name="article-id" content="p-001">
<style>p { color: red }</style></head>
<body><nav><p>Home | News | Sport</p></nav><header><p>Breaking</p></header>
<ARTICLE class="story"><h1>Storm hits the coast</h1>
<P>A <b>severe</b> storm &amp; heavy rain hit the <a href="/coast">coast</a>
   on Monday.</P><!-- an editor's note -->
<script>var tracking = "<p>not text</p>";</script>
<p>   </p><p>Residents were told to stay&nbsp;indoors. <br>Schools closed.</p>
</ARTICLE><footer><p>Copyright</p></footer></body></HTML>"""

SMALL = {
    "articles.csv": ("\ufeffid,title,text,category\r\n"
                     'a1,Rates rise,"The bank raised rates, again.",business\r\n'
                     'a2,Quotes,"He said ""no"", twice,\nthen left.\nThe end.",politics\r\n'
                     "a3,Empty,,sport\r\n"
                     "a4,Odd,Some text,weather\r\n"
                     'a5,Extra,"one",sport,surplus\r\n'
                     "\r\n"
                     "a6,Match,The home side won the final.,Sport\r\n").encode("utf-8"),
    "archive_latin1.csv": ("id,title,text,category\n"
                           "b1,Café owners,Café owners in Zürich paid £5 more.,business\n"
                           "b2,Election,The minister's party won the election.,politics\n").encode("latin-1"),
    "export.csv": (b",id,title,text,category\n"
                   b"0,e1,Grand final,The home side won the final!,sport\n"
                   b"3,e2,Talks,Leaders met for peace talks on Tuesday.,world\n"),
    "feed.jsonl": (b'{"id": "c1", "headline": "Shares fall", "body": "Shares fell sharply on Wall Street.", '
                   b'"section": "business"}\n'
                   b"\n"
                   b"{not json\n"
                   b'["a", "list"]\n'
                   b'{"id": "c2", "headline": "No body", "section": "world"}\n'
                   b'{"id": "c3", "headline": "Vote", "body": "Parliament voted on the new budget.", '
                   b'"section": "politics"}\n'
                   b'{"id": "c4", "headline": "Cup", "body": "The cup holders lost at home.", "section": "sport"}\n'
                   ),
    "pages/p-001.html": PAGE.encode("utf-8"),
    "pages/index.html": b"<html><head><title>Index</title></head><body><p>All stories</p></body></html>",
    "pages/p-002.html": (b'<html><head><title>Aid</title><meta name="category" content="world">'
                         b'<meta name="article-id" content="p-002"></head><body><article><p>Aid arrived in the '
                         b"region.</p></article></body></html>"),
    "notes.txt": b"not data: ignored\n",
}

#: what read_records gives for SMALL: (id, title, text, label, source) in visiting order, and the bad rows
EXPECTED_RECORDS = [
    ("b1", "Café owners", "Café owners in Zürich paid £5 more.", "business", "archive_latin1.csv"),
    ("b2", "Election", "The minister's party won the election.", "politics", "archive_latin1.csv"),
    ("a1", "Rates rise", "The bank raised rates, again.", "business", "articles.csv"),
    ("a2", "Quotes", 'He said "no", twice,\nthen left.\nThe end.', "politics", "articles.csv"),
    ("a6", "Match", "The home side won the final.", "sport", "articles.csv"),
    ("e1", "Grand final", "The home side won the final!", "sport", "export.csv"),
    ("e2", "Talks", "Leaders met for peace talks on Tuesday.", "world", "export.csv"),
    ("c1", "Shares fall", "Shares fell sharply on Wall Street.", "business", "feed.jsonl"),
    ("c3", "Vote", "Parliament voted on the new budget.", "politics", "feed.jsonl"),
    ("c4", "Cup", "The cup holders lost at home.", "sport", "feed.jsonl"),
    ("p-001", "Storm hits the coast", "A severe storm & heavy rain hit the coast on Monday.\n\nResidents were told to "
     "stay indoors. Schools closed.", "world", "pages/p-001.html"),
    ("p-002", "Aid", "Aid arrived in the region.", "world", "pages/p-002.html"),
]
EXPECTED_PROBLEMS = [
    ("articles.csv", 6, "missing_text"), ("articles.csv", 7, "unknown_label"), ("articles.csv", 8, "wrong_field_count"),
    ("feed.jsonl", 3, "invalid_json"), ("feed.jsonl", 4, "invalid_json"), ("feed.jsonl", 5, "missing_text"),
    ("pages/index.html", 1, "no_article"),
]


def expected_small():
    records = [dict(zip(("id", "title", "text", "label", "source"), r, strict=True)) for r in EXPECTED_RECORDS]
    problems = [dict(zip(("file", "line", "reason"), p, strict=True)) for p in EXPECTED_PROBLEMS]
    return {"records": records, "problems": problems}


@pytest.fixture(scope="module")
def small(job_files, cd):
    return cd.hand_over(job_files, "public-small", SMALL)  # (host path, sandbox path)


@pytest.mark.points(1)
def test_extract_article(student, reference):
    """the <article> paragraphs only (no nav, script, style or footer), entities decoded, whitespace collapsed"""
    for page in (PAGE, SMALL["pages/index.html"].decode(), "<article><p>x</p></article>"):
        got = student.extract_article(page)
        expect_type(got, dict, "extract_article(html)")
        want = reference.extract_article(page)
        for key in ("has_article", "id", "category", "title", "text"):
            assert got.get(key) == want[key], (
                f"extract_article: {key} should be {want[key]!r}, got {got.get(key)!r}: "
                + {"text": "keep only the <p> paragraphs inside <article>, each one's whole text (inline tags kept "
                           "as text, <script> and <style> left out), whitespace collapsed, joined with a blank line",
                   "title": "the <title> text with whitespace runs collapsed and stripped",
                   "has_article": "whether the page has an <article> element at all"}.get(
                    key, "the content of the <meta name=...> tag, None without one"))


@pytest.mark.points(1)
def test_normalise_key(student):
    """near duplicates (case, punctuation, whitespace, full-width letters) share a key; other texts do not"""
    same = ["Hello,  World!", "hello world", "ＨＥＬＬＯ world", "HELLO\nWORLD.", "  hello -- world  "]
    keys = [student.normalise_key(text) for text in same]
    for key in keys:
        expect_type(key, str, "normalise_key(text)")
    assert keys == ["hello world"] * len(same), (
        "normalise_key: NFKC, casefold, keep the \\w+ runs, join them with single spaces\n"
        f"{dict(zip(same, keys, strict=True))}")
    assert student.normalise_key("Straße") == student.normalise_key("STRASSE"), (
        "use casefold(), not lower(): 'Straße' and 'STRASSE' are one word")
    assert student.normalise_key("hello world") != student.normalise_key("hello, word"), "different texts, one key"


@pytest.mark.points(1)
def test_read_records(student, small, cd):
    """BOM, latin-1, quoted commas and line breaks, the pandas index column, JSONL, HTML; bad rows reported"""
    got = cd.expect_records(student.read_records(small[1]), "read_records(data_dir)")
    want = expected_small()
    assert got["records"] == want["records"], cd.first_record_difference(got["records"], want["records"])
    assert list(got["problems"]) == want["problems"], (
        "read_records should report each bad row as {'file', 'line', 'reason'}, line = the record's FIRST physical "
        f"line (header = 1)\ngot {got['problems']}\nexpected {want['problems']}")


@pytest.mark.points(1)
def test_build_small_dataset(student, reference, small, job_files, cd):
    """build_dataset saves a DatasetDict with the schema (a ClassLabel) and reports counts and duplicates"""
    host, inside = cd.out_dir(job_files, "public-small")
    report = cd.expect_report(student.build_dataset(small[1], inside, seed=4242))
    loaded = cd.load_saved(host)
    assert sorted(loaded) == sorted(cd.SPLITS), f"the DatasetDict should have the splits {cd.SPLITS}: {sorted(loaded)}"
    for split in cd.SPLITS:
        assert loaded[split].features == cd.expected_features(), (
            f"the {split} split's features should be {cd.expected_features()}, got {loaded[split].features}: build "
            "it with Dataset.from_dict(columns, features=features()), label a ClassLabel, no extra column")
    kept, dropped = reference.deduplicate(expected_small()["records"])
    parts = reference.split_indices(len(kept), 4242)
    assert report["counts"] == {k: len(v) for k, v in parts.items()}, (
        f"counts {report['counts']}, expected {({k: len(v) for k, v in parts.items()})}: split the de-duplicated "
        "records 80/10/10 with random.Random(seed).shuffle")
    assert list(report["duplicates"]) == dropped, (
        f"duplicates {report['duplicates']}, expected {dropped}: e1 repeats a6 once normalised (keep the first)")
    rows = cd.as_rows(loaded)
    for split, idx in parts.items():
        assert [r["id"] for r in rows[split]] == [kept[i]["id"] for i in idx], (
            f"the {split} split holds other records than the 80/10/10 split of random.Random(seed).shuffle")
    record("counts", report["counts"])

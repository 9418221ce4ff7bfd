"""Hidden checks of the preprocessing pipeline: random inputs made from the grading seed, compared with the
reference in this process; properties (idempotence, mask sums, no token lost); a stream fed through a pipe."""

import contextlib
import fcntl
import io
import os
import random
import select
import threading
from pathlib import Path

import pytest
import torch

from grader.testing import StudentCodeError, expect_type, record

WORDS = ["the", "model", "reads", "tokens", "Data", "cleaning", "matters", "42", "naïve", "café", "Zürich",
         "straße", "Ελληνικά", "русский", "中文字符", "日本語", "한국어", "שלום", "مرحبا", "नमस्ते", "क्\u200dष",
         "می\u200cخواهم", "ﬁne", "ﬂat", "oﬃce", "Ｆｕｌｌ", "ｗｉｄｔｈ", "０１２", "½", "⅓", "x²", "①", "Ⅻ", "㎏", "™",
         "ｶﾀｶﾅ", "ſ", "Ω", "ℌ", "…", "\ufdfa"]
EMOJI = ["😀", "👩\u200d💻", "👍🏽", "🇫🇷", "❤\ufe0f", "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"]
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\ufeff", "\u00ad", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c",
             "\u202e", "\u2060", "\u2066", "\u2069", "\ue000", "\U000f0001", "\x00", "\x01", "\x08", "\x0e", "\x1b",
             "\x7f", "\x80", "\x9b", "\x9f"]
SPACES = [" ", "  ", "\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2028", "\u2029", "\x85",
          "\x0b", "\x0c", "\x1c", "\x1f", "\u2003", "\u202f", " \n \n "]
HTML = ["<p>", "</p>", "<br/>", "<b>", "</b>", '<a href="x.html">', "</a>", "<!-- c -->", "<!DOCTYPE html>",
        "<?xml version='1.0'?>", "<div class='a b'>", "<b", "</", "<a href='", "< p>", "<<b>>", "<3", "a<b", " < ",
        " > ", "<\u200bi>", "＜b＞", "＜/b＞", "<script>var x = 1;</script>", "&amp;", "&lt;", "&gt;", "&quot;",
        "&#39;", "&nbsp;", "&eacute;", "&#x1F600;", "&#128512;", "&amp", "&notin;", "&notit;", "&#0;", "&#xD800;",
        "&#x110000;", "&#x85;", "&amp;lt;b&amp;gt;", "&lt;i&gt;", "&lt;/i&gt;", "&#xFB01;", "&#x200B;", "&#x3c;b&#x3e;",
        "＆amp;", "&#65;&#x42;", "&lt;3"]
COMBINING = [chr(c) for c in range(0x300, 0x370)]
RANGES = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x5FF), (0x600, 0x6FF), (0x900, 0x97F),
          (0x2000, 0x206F), (0x2100, 0x218F), (0x2460, 0x24FF), (0x3000, 0x30FF), (0x4E00, 0x4E80), (0xFB00, 0xFB4F),
          (0xFE30, 0xFE4F), (0xFF00, 0xFFEF), (0x1F300, 0x1F64F)]


def _random_char(rng):
    while True:
        lo, hi = rng.choice(RANGES)
        c = chr(rng.randint(lo, hi))
        if not ("\ud800" <= c <= "\udfff"):
            return c


def _piece(rng):
    kind = rng.random()
    if kind < 0.3:
        return rng.choice(WORDS)
    if kind < 0.4:
        return rng.choice(WORDS)[:1] + "".join(rng.choice(COMBINING) for _ in range(rng.randint(1, 3)))
    if kind < 0.47:
        return rng.choice(EMOJI)
    if kind < 0.57:
        return rng.choice(INVISIBLE)
    if kind < 0.72:
        return rng.choice(SPACES)
    if kind < 0.9:
        return rng.choice(HTML)
    return "".join(_random_char(rng) for _ in range(rng.randint(1, 6)))


def random_texts(seed, n=240):
    """``n`` random texts: empty ones, whitespace only, ordinary mixes, and three lines of 10,000+ characters."""
    rng = random.Random(f"preprocessing-pipeline/{seed}")
    texts = ["", " ", "\u200b", rng.choice(COMBINING) + "starts with a combining mark"]
    while len(texts) < n - 3:
        texts.append("".join(_piece(rng) for _ in range(rng.randint(1, 30))))
    for _ in range(3):
        long = []
        while sum(map(len, long)) < 10_000:
            long.append(rng.choice(WORDS) if rng.random() < 0.8 else _piece(rng).replace("\n", " "))
            long.append(" ")
        texts.append("".join(long))
    return texts


@pytest.fixture(scope="module")
def texts(seed, targets):
    return random_texts(seed, int(targets["hidden_texts"]))


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
def test_hidden_clean_matches_reference(student, reference, texts, pp):
    """clean_text follows the stub's rules on random Unicode, HTML, invisible characters, empty and 10k-char texts"""
    pp.expect_clean(student, reference, [(text, reference.clean_text(text)) for text in texts], show_expected=False)
    record("texts", len(texts))


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_hidden_clean_idempotent(student, texts, pp):
    """clean_text(clean_text(x)) == clean_text(x) on the random texts (a property: no reference involved)"""
    for text in texts:
        once = student.clean_text(text)
        expect_type(once, str, "clean_text(text)")
        twice = student.clean_text(once)
        if twice != once:
            at = pp.first_difference(twice, once)
            raise AssertionError(
                "cleaning a cleaned text changed it again: repeat the five-step pass until the text stops changing\n"
                f"the first change is at character {at}: {pp.excerpt(once, at)} became {pp.excerpt(twice, at)}")


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_hidden_tokenize_matches_reference(student, reference, texts, tok_dir, pp, seed):
    """tokenize equals the tokenizer's own ids on random cleaned texts, with and without max_length and specials"""
    rng = random.Random(seed + 1)
    cleaned = [reference.clean_text(t) for t in texts]
    # an option set after one with max_length has none: a tokenizer whose truncation was switched on stays so
    settings = [(16, True), (None, True), (2, True), (None, False), (3, False), (64, True)]
    for start in range(0, len(cleaned), 20):
        chunk = cleaned[start: start + 20]
        length, specials = settings[start // 20] if start // 20 < len(settings) else (
            rng.choice([None, 2, 3, 16, 64]), rng.random() < 0.7)
        options = {"max_length": length, "add_special_tokens": specials}
        want = reference.tokenize(chunk, tok_dir, **options)
        got = pp.expect_id_lists(student.tokenize(chunk, tok_dir, **options), len(chunk), "tokenize(texts, ...)")
        for text, g, w in zip(chunk, got, want, strict=True):
            assert g == w, (
                f"tokenize(..., max_length={length}, add_special_tokens={specials}) differs from the tokenizer's "
                "ids: call the tokenizer with those options and truncation=True when max_length is given (it keeps "
                f"the final [SEP])\non the text {pp.excerpt(text, 0, 30)}: got {g[:12]}...")


def random_features(rng, n, pad_id, labels, max_length):
    """Features with ids that include ``pad_id`` itself (GPT-2 pads with its end-of-text id, which also occurs)."""
    features = []
    for _ in range(n):
        length = rng.randint(1, max_length or 24)
        feature = {"input_ids": [rng.choice([pad_id, rng.randint(0, 999)]) for _ in range(length)]}
        if labels:
            feature["labels"] = [rng.randint(0, 999) for _ in range(rng.randint(1, max_length or 24))]
        features.append(feature)
    return features


def expect_lengths(batch, features, what):
    """The property behind every mask: its row sums are the features' true lengths."""
    sums = batch["attention_mask"].sum(dim=1).tolist()
    lengths = [len(f["input_ids"]) for f in features]
    assert sums == lengths, (
        f"{what}: attention_mask sums {sums} differ from the true lengths {lengths}: build the mask from the lengths "
        "(ids can equal pad_token_id inside an example), and never change the features you are given")


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_hidden_collate_random_batches(student, reference, pp, seed):
    """random batches, every combination of labels, max_length and pad_to_multiple_of; mask sums = true lengths"""
    rng = random.Random(seed + 2)
    for case in range(24):
        pad_id = rng.choice([0, 2, 50256 % 1000])
        options = {"max_length": rng.choice([None, 24, 30]), "pad_to_multiple_of": rng.choice([None, 1, 8, 16])}
        features = random_features(rng, rng.randint(1, 6), pad_id, case % 2 == 0, options["max_length"])
        what = f"collate({len(features)} features, pad_token_id={pad_id}, {options}, labels={case % 2 == 0})"
        batch = pp.expect_batch(student.collate(features, pad_id, **options),
                                reference.collate(features, pad_id, **options), what)
        expect_lengths(batch, features, what)


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_hidden_batches_do_not_mutate_features(student, reference, pp, seed):
    """three shuffled epochs over the same features: each batch is collated from the unchanged features"""
    rng = random.Random(seed + 3)
    features = random_features(rng, 11, 0, True, None)
    got = student.batches(features, 4, 0, epochs=3, seed=seed % 1000, pad_to_multiple_of=2)
    want = reference.batches(features, 4, 0, epochs=3, seed=seed % 1000, pad_to_multiple_of=2)
    expect_type(got, (list, tuple), "batches(...)")
    assert len(got) == len(want), (
        f"batches(11 features, batch_size=4, epochs=3) returned {len(got)} batches, expected {len(want)}: every epoch "
        "is cut into ceil(11 / 4) = 3 batches, the last one smaller")
    for index, (g, w) in enumerate(zip(got, want, strict=True)):
        epoch = index // 3
        why = (f"batch {index} (epoch {epoch}): " + (
               "visit epoch e in the order torch.randperm(len(features), generator=torch.Generator().manual_seed(seed "
               "+ e)).tolist() (a DataLoader(shuffle=True, generator=...) draws a seed from that generator first, so "
               "its order differs), cut into consecutive batches. " if epoch == 0 else
               "the first epoch was right, so collate probably changed the features it was given (padded their lists "
               "in place); build new lists. "))
        pp.expect_batch(g, w, f"batch {index} of batches(...)", why=why)


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_hidden_pack_loses_no_token(student, reference, pp, seed):
    """random documents (empty, shorter and longer than a block): the blocks hold the stream, nothing lost or doubled"""
    rng = random.Random(seed + 4)
    for case in range(12):
        block = rng.choice([1, 3, 8, 16, 32])
        sizes = [rng.choice([0, 1, 2, 5, 17, 40]) for _ in range(rng.randint(1, 9))]
        docs = [[rng.randint(3, 999) for _ in range(size)] for size in sizes]
        drop = case % 2 == 0
        stream = [t for doc in docs if doc for t in (*doc, 1)]
        got = student.pack(docs, block, 1, drop_remainder=drop, pad_token_id=0)
        what = f"pack({len(docs)} documents, block_size={block}, drop_remainder={drop})"
        expect_type(got, dict, what)
        ids, mask = got.get("input_ids"), got.get("attention_mask")
        expect_type(ids, torch.Tensor, f"{what}['input_ids']")
        expect_type(mask, torch.Tensor, f"{what}['attention_mask']")
        if ids.shape == mask.shape and ids.dim() == 2:
            real = ids[mask.bool()].tolist()
            keep = len(stream) - len(stream) % block if drop else len(stream)
            at = next((i for i, (a, b) in enumerate(zip(real, stream, strict=False)) if a != b), min(len(real), keep))
            assert real == stream[:keep], (
                f"{what}: the real tokens (attention_mask 1) of the blocks, read in order, should be the stream of the "
                f"documents each followed by eos: {len(real)} tokens, expected {keep}, first difference at token {at}. "
                "No overlap, no per-document cutting, empty documents skipped"
                + (", the remainder dropped" if drop else ", the remainder padded into a last block"))
        pp.expect_batch(got, reference.pack(docs, block, 1, drop_remainder=drop, pad_token_id=0), what,
                        advice=pp.PACK_ADVICE)


STREAM_LINES = [
    "<p>First document: a short <b>HTML</b> page &amp; an entity.</p>",
    "",
    "   \u200b  ",
    "ﬁnance Ｆｕｌｌ-width ½ and café",
    "Windows line ending\r",
    "&lt;b&gt;double escaped&lt;/b&gt; and \u202emirrored\u202c text",
]


def student_clean(student, text):
    """The student's own clean_text: the stream checks grade streaming and packing, the clean checks grade cleaning."""
    cleaned = student.clean_text(text)
    expect_type(cleaned, str, "clean_text(text)")
    return cleaned


def _read_blocks(gen, block_size, limit, pp):
    blocks = []
    for index in range(limit):
        try:
            value = gen.call("__next__")
        except StudentCodeError as exc:
            if exc.exc_type == "StopIteration":
                return blocks
            raise
        blocks.append(pp.expect_block(value, block_size, f"block {index} of stream_blocks(...)"))
    raise AssertionError(f"stream_blocks yielded more than {limit} blocks from this file: it should stop at its end")


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_hidden_stream_matches_pack(student, reference, job_files, tok_dir, texts, pp):
    """stream_blocks over a file equals pack(lines cleaned by your clean_text, tokenized); block_size 0 is refused"""
    lines = [*STREAM_LINES, *(t.replace("\r", " ").replace("\n", " ") for t in texts[::4]), texts[-1]]
    content = "\n".join(lines) + "\n"
    path = job_files.write("stream/docs.txt", content)
    with pytest.raises(StudentCodeError) as err:
        student.new("stream_blocks", path, tok_dir, 0).call("__next__")
        pytest.fail("stream_blocks(path, tokenizer_dir, block_size=0) should raise ValueError (at the latest when the "
                    "first block is asked for)")
    assert err.value.exc_type == "ValueError", (
        f"stream_blocks with block_size=0 raised {err.value.exc_type}, expected ValueError")
    cleaned = [student_clean(student, line) for line in io.StringIO(content, newline=None)]  # text-mode lines
    docs = reference.tokenize([c for c in cleaned if c], tok_dir, add_special_tokens=False)
    want = reference.pack(docs, 96, reference.separator_id(tok_dir))["input_ids"].tolist()
    got = _read_blocks(student.new("stream_blocks", path, tok_dir, 96), 96, len(want) + 50, pp)
    differ = [i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w]
    assert len(got) == len(want) and not differ, (
        f"stream_blocks gave {len(got)} blocks, pack(...) of the same lines gives {len(want)}"
        + (f" (the first difference is in block {differ[0]})" if differ else "")
        + ": clean each line, tokenize it WITHOUT special tokens, skip lines without ids, append [SEP] (102) after "
        "each document, yield full blocks only")
    record("blocks", len(got))


class PipeFeeder(threading.Thread):
    """Writes lines into a FIFO only as fast as the reader drains it, and knows how far ahead the reader is.

    While the pipe has room for another 4 KiB, the reader has consumed at least ``written - capacity + 4096``
    bytes.  The feeder never writes past ``allowed`` (the bytes the next block needs, plus the allowance and
    the pipe's capacity): a reader that drains the pipe past that point has read more than the allowance ahead,
    so the feeder records ``overrun`` and ends the file there (the student's code then sees the end of it).
    """

    def __init__(self, fifo, lines):
        super().__init__(daemon=True)
        self.fifo, self.lines = fifo, lines
        self.written, self.allowed, self.capacity = 0, 0, 65536
        self.overrun = False
        self.stop = threading.Event()

    def run(self):
        fd = os.open(self.fifo, os.O_WRONLY)
        try:
            if self.stop.is_set():
                return
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, 1031, 65536)  # F_SETPIPE_SZ: a known capacity
            self.capacity = fcntl.fcntl(fd, 1032)  # F_GETPIPE_SZ
            os.set_blocking(fd, False)
            self._feed(fd)
        finally:
            os.close(fd)

    def _feed(self, fd):
        data = b"".join(self.lines)
        while not self.stop.is_set() and self.written < len(data):
            if not select.select([], [fd], [], 0.05)[1]:
                continue
            if self.written >= self.allowed:
                self.overrun = True
                return
            end = min(self.written + 4096, self.allowed, len(data))
            try:
                self.written += os.write(fd, data[self.written:end])
            except BlockingIOError:
                continue
            except BrokenPipeError:
                return

    def close(self):
        self.stop.set()
        if self.is_alive():  # still waiting in open(): no reader came; open one to release it
            fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
            self.join(5)
            os.close(fd)


def stream_source(assets, seed, total):
    """Lines of real news text with noise, ``total`` bytes in all, made from the seed."""
    rng = random.Random(f"stream/{seed}")
    paragraphs = (Path(assets["lee-corpus"]) / "train.txt").read_text(encoding="utf-8").splitlines()
    paragraphs = [p for p in paragraphs if p.strip()]
    lines, size = [], 0
    while size < total:
        text = rng.choice(paragraphs)
        cut = rng.randint(0, len(text))
        line = (text[:cut] + rng.choice(HTML + INVISIBLE + WORDS) + text[cut:]).replace("\r", " ").replace("\n", " ")
        encoded = (line + "\n").encode("utf-8")
        lines.append(encoded)
        size += len(encoded)
    return lines


def expected_stream(student, reference, lines, tok_dir, block_size, blocks):
    """The first ``blocks`` blocks of the file, and for each the bytes a reader must have read to complete it."""
    need, want, ids, consumed = [], [], [], 0
    sep = reference.separator_id(tok_dir)
    for line in lines:
        consumed += len(line)
        text = student_clean(student, line.decode("utf-8"))
        doc = reference.tokenize([text], tok_dir, add_special_tokens=False)[0] if text else []
        if doc:
            ids += [*doc, sep]
        while len(ids) >= block_size and len(want) < blocks:
            want.append(ids[:block_size])
            del ids[:block_size]
            need.append(consumed)
        if len(want) == blocks:
            return need, want
    raise RuntimeError("the generated stream is too short for the blocks the check asks for")


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
@pytest.mark.timeout_s(60)
def test_hidden_stream_reads_lazily(student, reference, job_files, assets, tok_dir, targets, seed, pp):
    """stream_blocks reads a pipe no further ahead of its blocks than the allowance (a bounded-memory streamer)

    The expected blocks come from your own clean_text, so a cleaning mistake costs only the clean checks.
    """
    block_size, blocks = 128, int(targets["stream_blocks"])
    allowance = int(float(targets["stream_read_ahead_mib"]) * 2**20)
    lines = stream_source(assets, seed, int(float(targets["stream_total_mib"]) * 2**20))
    need, want = expected_stream(student, reference, lines, tok_dir, block_size, blocks)
    host, inside = job_files.shared_dir()
    fifo = Path(host) / f"stream-{seed}.txt"
    os.mkfifo(fifo, 0o644)
    feeder = PipeFeeder(fifo, lines)
    feeder.start()
    try:
        gen = student.new("stream_blocks", f"{inside}/{fifo.name}", tok_dir, block_size)
        for k in range(blocks):
            feeder.allowed = need[k] + allowance + feeder.capacity
            try:
                value = gen.call("__next__")
            except StudentCodeError as exc:
                if exc.exc_type != "StopIteration" or not feeder.overrun:
                    raise
                value = None
            ahead = max(0, feeder.written - feeder.capacity - need[k])
            record("read_ahead_bytes", ahead)
            assert not feeder.overrun, (
                f"stream_blocks read more than {allowance / 2**20:g} MiB of the file beyond what its first {k + 1} "
                "blocks need: read one line at a time (for line in f) and yield each block as soon as it is complete, "
                "never f.read(), f.readlines() or list(f)")
            block = pp.expect_block(value, block_size, f"block {k} of stream_blocks(...)")
            assert block == want[k], (
                f"block {k} of the stream differs from pack(...) of the same lines: clean each line, skip empty ones, "
                "tokenize without special tokens, append [SEP] after each document")
    finally:
        feeder.close()
        fifo.unlink()
    record("bytes_written", feeder.written)

"""Public checks of clean_text: HTML, Unicode compatibility characters, invisible characters, whitespace."""

import pytest

HTML = [
    ("<p>Hello&nbsp;<b>World</b></p>", "Hello World"),
    ("<p>one</p><p>two</p>", "one two"),
    ("Fish &amp; chips &lt;3 &quot;yum&quot; &#39;ok&#39;", "Fish & chips <3 \"yum\" 'ok'"),
    ("x < y and y > z, 1<2", "x < y and y > z, 1<2"),
    ('<a href="https://example.org">link</a> <br/>end <!-- note -->', "link end"),
    ('unclosed <a href="x', 'unclosed <a href="x'),
    ("caf&eacute; &#x1F600; &#128512; &amp", "café 😀 😀 &"),
]

COMPAT = [
    ("ﬁnance ﬂow oﬃce", "finance flow office"),
    ("Ｈｅｌｌｏ，Ｗｏｒｌｄ！ ０１２３", "Hello,World! 0123"),
    ("½ cup, x² + y³, ①", "1\u20442 cup, x2 + y3, 1"),
    ("e\u0301te\u0301 A\u030a", "été Å"),
    ("™ … ㎏ Ⅻ", "TM ... kg XII"),
    ("no\u00a0break\u3000ideographic", "no break ideographic"),
    ("＜b＞bold＜/b＞ ＆amp;", "bold &"),
]

INVISIBLE = [
    ("zero\u200bwidth \ufeffBOM soft\u00adhyphen", "zerowidth BOM softhyphen"),
    ("bell\x07 null\x00 del\x7f c1\x9b", "bell null del c1"),
    ("\u200fשלום\u200e and \u202aembedded\u202c", "שלום and embedded"),
    ("joiner: 👩\u200d💻 and می\u200cخواهم", "joiner: 👩\u200d💻 and می\u200cخواهم"),
    ("private\ue000use", "privateuse"),
    ("  lots   of\tspace  ", "lots of space"),
    ("para one\r\nstill one\n\n\n\npara two\n  \n\t\nthree\n\n", "para one\nstill one\n\npara two\n\nthree"),
    ("line\u2028sep\x85nel\x0bvt", "line\nsep\nnel\nvt"),
    ("", ""),
    (" \n\u200b\t\ufeff ", ""),
]

TRICKY = [
    ("&lt;b&gt;bold&lt;/b&gt; text", "bold text"),
    ("&amp;lt;i&amp;gt;double&amp;lt;/i&amp;gt;", "double"),
    ("&#xFB01;nd &#xFF21;", "find A"),
    ("<\u200bb>tag hidden by a zero-width space</\u200bb>", "tag hidden by a zero-width space"),
    ("＜p＞full-width tag＜/p＞", "full-width tag"),
    ("a&#x200B; &#x200B;b", "a b"),
    ("&amp;amp;amp;", "&"),
]


@pytest.mark.points(1)
def test_clean_html_and_entities(student, reference, pp):
    """tags become one space, entities are decoded with html.unescape, a '<' that starts no tag stays"""
    pp.expect_clean(student, reference, HTML, why="HTML: ")


@pytest.mark.points(1)
def test_clean_unicode_compatibility(student, reference, pp):
    """NFKC: ligatures, full-width letters, fractions and superscripts become plain characters"""
    pp.expect_clean(student, reference, COMPAT, why="Unicode normalisation (NFKC): ")


@pytest.mark.points(1)
def test_clean_invisible_and_whitespace(student, reference, pp):
    """controls, zero-width and format characters go (joiners stay); whitespace runs collapse, paragraphs stay"""
    pp.expect_clean(student, reference, INVISIBLE, why="invisible characters and whitespace: ")


@pytest.mark.points(1)
def test_clean_idempotent(student, reference, pp):
    """texts that only one pass leaves unclean: clean_text(clean_text(x)) == clean_text(x)"""
    for once in pp.expect_clean(student, reference, TRICKY, why="idempotence: "):
        twice = student.clean_text(once)
        assert twice == once, (
            "cleaning the cleaned text changed it again: repeat the five-step pass until nothing changes\n"
            f"clean_text({once!r}) gave {twice!r}")

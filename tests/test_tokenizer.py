"""Tests for clip_ref.tokenizer: golden ids, parity with OpenAI's tokenizer, properties,
errors.

OpenAI's ``clip`` module (PyPI package clip-anytorch) is the test-only reference. The
parity corpus is built deterministically below: a hand-written list plus generated
strings covering many scripts, emoji, HTML entities, mojibake, odd whitespace, digits,
punctuation, contractions and over-long texts. Literal special-token strings are
excluded from it on purpose: clip_ref treats them as plain text where OpenAI does not,
and that difference is tested on its own.
"""

from __future__ import annotations

import doctest
import hashlib
import importlib.resources
import random
import string
import subprocess
import sys
import warnings

import ftfy
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from clip_ref import tokenizer as T

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # clip imports the deprecated pkg_resources
    import clip
    from clip.simple_tokenizer import SimpleTokenizer

SOT, EOT = T.SOT_TOKEN_ID, T.EOT_TOKEN_ID
MERGES_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.fixture(scope="module")
def tok() -> T.Tokenizer:
    return T.get_tokenizer()


@pytest.fixture(scope="module")
def openai_tok() -> SimpleTokenizer:
    return SimpleTokenizer()


def has_literal_special(text: str) -> bool:
    cleaned = T.clean_text(text)
    return T.SOT_TOKEN in cleaned or T.EOT_TOKEN in cleaned


# -- the parity corpus
# --------------------------------------------------------------------------------

HAND_WRITTEN = [
    "Hello World!",
    "a photo of a cat.",
    "A photo of a {}.",
    "itap of a dog",
    "a bad photo of the tench.",
    "",
    " ",
    "\t\n\r ",
    "The quick brown fox jumps over the lazy dog.",
    "IT'S A DOG. DON'T YOU SEE? WE'LL GO, THEY'RE HERE, I'M SURE, I'D SAY "
    "YOU'VE SEEN IT.",
    "it's it't it're it've it'm it'll it'd",
    "'s 's's ''s 'S 'ſ x'ſy",  # long s case-folds to s in the contraction branch
    "rock'n'roll o'clock y'all",
    "it’s curly — not a contraction",
    "naïve café résumé Ångström façade jalapeño Zürich smörgåsbord",
    "İstanbul ǅemal ß ẞ ﬁnance ﬀ",
    # U+0345 is dropped by the reference pre-tokenizer
    "Ωμέγα αλφάβητο Ελληνικά ᾳ α\u0345β",
    "Привет, мир! Съешь же ещё этих мягких французских булок.",
    "東京タワーの写真",
    "一只猫坐在垫子上。",
    "고양이 사진입니다",
    "مرحبا بالعالم، صورة قطة",
    "שלום עולם",
    "नमस्ते दुनिया",
    "ภาษาไทย สวัสดี",
    "😀 😃 😄 😁 😆",
    "👨‍👩‍👧‍👦 family, 👩🏽‍💻 coder, 🏳️‍🌈 flag, 🏴‍☠️ pirate",
    "🇺🇸🇬🇧🇫🇷🇯🇵 flags",
    "1️⃣ 2️⃣ #️⃣ keycaps",
    "👍🏻👍🏼👍🏽👍🏾👍🏿",
    "&amp; &lt;b&gt; &quot;quoted&quot; &#39;single&#39; &#x27;hex&#x27; "
    "&nbsp;space &eacute;",
    "&amp;amp; &amp;lt;b&amp;gt; &amp;quot;double&amp;quot; &amp;#39;s",
    "&amp;amp;amp; triple-escaped stays partly escaped",
    "Fish &amp; Chips &amp;amp; Ale",
    "<b>&amp;amp;</b> with a tag, so ftfy leaves the entities to html.unescape",
    "<i>caf&amp;eacute;</i> &lt;3 &amp;lt;3",
    "1 < 2 &amp;&amp; 3 &gt; 2",
    "The Mona Lisa doesnÃ¢â‚¬â„¢t have eyebrows.",
    "cafÃ© rÃ©sumÃ©",
    "â€œquotedâ€\x9d and â€˜singleâ€™",
    "ÃƒÂ©",
    "tab\tseparated\tvalues",
    "new\nlines\n\nand\r\nwindows",
    "non\xa0breaking\xa0space",
    "zero\u200bwidth\u200bspace and\u200dzwj and\ufeffbom",
    "em\u2003space ideographic\u3000space line\u2028separator",
    "\x1cfile\x1dgroup\x1erecord\x1funit separators",
    "\x1c \x1d a \x1e\x1f",
    "\x00\x01\x07 control \x7f",
    "0 1 2 3 4 5 6 7 8 9 10 100 1000 3.14159 -42 1e10",
    "+1 (555) 123-4567 and 1,000,000 and 12:30pm",
    "٠١٢٣٤٥٦٧٨٩ Arabic-Indic digits, ①②③ circled, Ⅷ roman",
    "!!! ??? ... --- *** ### $$$ %%% &&& ((( ))) [[[ ]]] {{{ }}} ||| ~~~ ```",
    "!?!?!?.,;:'\"/\\<>=+-_",
    "@user #hashtag https://example.com/path?a=1&b=2 email@example.com",
    "C++ C# F# .NET node.js",
    "</w> a</w>b",
    "<|notspecial|> <|end of text|> < |endoftext| >",
    "ALL CAPS SENTENCE WITH NUMBERS 123",
    "MiXeD CaSe WoRdS",
    "supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis",
    "a" * 200,
    "ab" * 100,
    "🙂" * 30,
    "x\u0301y\u0308z combining marks",
    "Ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ",
    "\U0001d400\U0001d401 mathematical bold",
    "\U00020000 \U0002a6d6 CJK extension B",
    "\ue000 private use \U000f0000",
    "\ufffd replacement char",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "ʻokina ʼapostrophe",
    "a photo of a 🐶 on the beach at sunset, 4k, trending on artstation",
]

WORDS = [
    "a",
    "an",
    "the",
    "photo",
    "picture",
    "image",
    "of",
    "cat",
    "dog",
    "bird",
    "car",
    "tree",
    "house",
    "person",
    "man",
    "woman",
    "child",
    "beach",
    "sunset",
    "red",
    "blue",
    "green",
    "small",
    "large",
    "old",
    "new",
    "happy",
    "running",
    "sitting",
    "on",
    "in",
    "at",
    "with",
    "near",
    "under",
    "over",
    "diagram",
    "painting",
    "sketch",
    "drawing",
    "rendering",
    "video",
    "game",
    "origami",
    "toy",
    "plush",
    "sculpture",
    "tattoo",
    "close-up",
    "cropped",
    "bright",
    "dark",
    "blurry",
    "pixelated",
    "jpeg",
    "low-resolution",
    "good",
    "bad",
    "nice",
    "weird",
    "cool",
    "clean",
    "dirty",
]
ACCENTED = "áàâäãåāăąçćčďéèêëēėęěğíìîïīįıľłńňñóòôöõøōőœŕřśšşťúùûüūůűųýÿźžżþðæß"
SCRIPT_RANGES = {
    "cjk": (0x4E00, 0x9FFF),
    "hiragana": (0x3041, 0x3096),
    "katakana": (0x30A1, 0x30FA),
    "hangul": (0xAC00, 0xD7A3),
    "arabic": (0x0621, 0x064A),
    "hebrew": (0x05D0, 0x05EA),
    "cyrillic": (0x0410, 0x044F),
    "greek": (0x0391, 0x03C9),
    "devanagari": (0x0905, 0x0939),
    "thai": (0x0E01, 0x0E2E),
}
EMOJI = [
    "😀",
    "🐶",
    "🐱",
    "🚗",
    "🌅",
    "🍕",
    "❤️",
    "✨",
    "🔥",
    "👀",
    "🎉",
    "☕",
    "⚽",
    "🏠",
    "🌍",
]
ZWJ_SEQUENCES = ["👨‍👩‍👧‍👦", "👩‍💻", "🧑‍🚀", "🏳️‍🌈", "👨‍❤️‍👨", "🐻‍❄️", "👁️‍🗨️", "🧔‍♀️"]
SKIN_TONES = ["\U0001f3fb", "\U0001f3fc", "\U0001f3fd", "\U0001f3fe", "\U0001f3ff"]
ENTITIES = [
    "&amp;",
    "&lt;",
    "&gt;",
    "&quot;",
    "&#39;",
    "&#x27;",
    "&nbsp;",
    "&eacute;",
    "&copy;",
    "&hellip;",
    "&amp;amp;",
    "&amp;lt;",
    "&amp;#39;",
    "&amp;quot;",
    "&#8217;",
    "&mdash;",
]
ODD_SPACES = [
    "\t",
    "\n",
    "\r\n",
    "\xa0",
    "\u2003",
    "\u3000",
    "\u200b",
    "\ufeff",
    "\x1c",
    "\u2028",
    "  ",
    "\x0b",
]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]


def generated_corpus(seed: int = 0) -> list[str]:
    """About 600 varied strings, the same on every run."""
    rng = random.Random(seed)

    def words(k: int) -> list[str]:
        return [rng.choice(WORDS) for _ in range(k)]

    def script_word(name: str) -> str:
        lo, hi = SCRIPT_RANGES[name]
        return "".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 6)))

    corpus = []
    for _ in range(50):  # ASCII captions with random case, punctuation and digits
        w = words(rng.randint(1, 12))
        w = [
            x.upper() if rng.random() < 0.2 else x.title() if rng.random() < 0.2 else x
            for x in w
        ]
        tail = rng.choice(["", ".", "!", "?!", " 2", " #1", " (2019)", "...", " :)"])
        corpus.append(" ".join(w) + tail)
    for _ in range(40):  # accented Latin
        w = words(rng.randint(1, 6))
        corpus.append(
            " ".join(x + rng.choice(ACCENTED) + rng.choice(ACCENTED).upper() for x in w)
        )
    for name in SCRIPT_RANGES:  # other scripts, alone and mixed with Latin
        for _ in range(8):
            parts = [script_word(name) for _ in range(rng.randint(1, 4))]
            if rng.random() < 0.5:
                parts.insert(rng.randint(0, len(parts)), rng.choice(WORDS))
            corpus.append(rng.choice([" ", "", "、", ", "]).join(parts))
    for _ in range(40):  # emoji: single, with skin tones, ZWJ sequences, flags
        bits = []
        for _ in range(rng.randint(1, 5)):
            kind = rng.randrange(4)
            if kind == 0:
                bits.append(rng.choice(EMOJI))
            elif kind == 1:
                bits.append("👍" + rng.choice(SKIN_TONES))
            elif kind == 2:
                bits.append(rng.choice(ZWJ_SEQUENCES))
            else:
                bits.append(
                    chr(0x1F1E6 + rng.randrange(26)) + chr(0x1F1E6 + rng.randrange(26))
                )
        corpus.append(
            rng.choice(["", " "]).join(bits) + " " + " ".join(words(rng.randint(0, 3)))
        )
    for _ in range(40):  # HTML entities, single and double escaped
        w = words(rng.randint(2, 6))
        for _ in range(rng.randint(1, 3)):
            w.insert(rng.randint(0, len(w)), rng.choice(ENTITIES))
        text = rng.choice([" ", ""]).join(w)
        # ftfy unescapes entities itself unless the text contains "<", so half get a
        # tag.
        corpus.append(f"<b>{text}</b>" if rng.random() < 0.5 else text)
    for _ in range(40):  # mojibake: UTF-8 bytes misread as Latin-1 or Windows-1252
        w = " ".join(x + rng.choice(ACCENTED) for x in words(rng.randint(1, 4)))
        w += rng.choice(["", " ’s", " “quoted”", " — dash", " 😀", " …"])
        codec = rng.choice(["latin-1", "cp1252"])
        try:
            corpus.append(w.encode("utf-8").decode(codec))
        except UnicodeDecodeError:  # a byte that cp1252 leaves undefined
            corpus.append(w.encode("utf-8").decode("latin-1"))
    for _ in range(40):  # odd whitespace
        w = words(rng.randint(2, 8))
        corpus.append(
            rng.choice(ODD_SPACES) + "".join(x + rng.choice(ODD_SPACES) for x in w)
        )
    for _ in range(30):  # digits and numbers
        corpus.append(
            " ".join(
                rng.choice(
                    [
                        str(rng.randint(0, 10 ** rng.randint(1, 12))),
                        f"{rng.random() * 1000:.{rng.randint(0, 5)}f}",
                        f"{rng.randint(1, 12)}:{rng.randint(0, 59):02d}",
                        rng.choice(WORDS),
                    ]
                )
                for _ in range(rng.randint(1, 6))
            )
        )
    for _ in range(30):  # punctuation runs
        corpus.append(
            " ".join(
                "".join(
                    rng.choice(string.punctuation) for _ in range(rng.randint(1, 8))
                )
                + rng.choice(["", rng.choice(WORDS)])
                for _ in range(rng.randint(1, 5))
            )
        )
    for _ in range(40):  # contractions in any case
        w = words(rng.randint(1, 5))
        text = " ".join(
            x + (rng.choice(CONTRACTIONS) if rng.random() < 0.6 else "") for x in w
        )
        corpus.append(text.upper() if rng.random() < 0.5 else text)
    for _ in range(60):  # random code points from the whole of Unicode (no surrogates)
        chars = []
        for _ in range(rng.randint(1, 20)):
            cp = rng.choice(
                [
                    rng.randint(0x20, 0x2FF),
                    rng.randint(0x300, 0x2FFF),
                    rng.randint(0x3000, 0xD7FF),
                    rng.randint(0xE000, 0xFFFF),
                    rng.randint(0x10000, 0x10FFFF),
                ]
            )
            chars.append(chr(cp))
        corpus.append("".join(chars))
    return corpus


def long_corpus(seed: int = 1) -> list[str]:
    """Texts far longer than 77 tokens."""
    rng = random.Random(seed)
    texts = [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(80, 300)))
        for _ in range(12)
    ]
    texts.append("东京" * 100)
    texts.append("👨‍👩‍👧‍👦" * 40)
    texts.append("1234567890" * 10)
    texts.append("&amp;amp; " * 100)
    return texts


CORPUS = [
    text for text in HAND_WRITTEN + generated_corpus() if not has_literal_special(text)
]
LONG = long_corpus()


def test_corpus_is_large_and_varied(tok):
    """The parity corpus really holds what the parity claim says it holds."""
    assert len(CORPUS) >= 500
    assert len(set(CORPUS)) >= 480

    def count(predicate):
        return sum(1 for text in CORPUS if predicate(text))

    assert count(lambda s: any("\u4e00" <= c <= "\u9fff" for c in s)) >= 10  # CJK
    assert count(lambda s: any("\u0621" <= c <= "\u064a" for c in s)) >= 8  # Arabic
    assert count(lambda s: "\u200d" in s) >= 10  # emoji ZWJ sequences
    # flags
    assert count(lambda s: any("\U0001f1e6" <= c <= "\U0001f1ff" for c in s)) >= 10
    assert count(lambda s: "&amp;" in s) >= 20  # (double-)escaped HTML
    # ... where ftfy does not unescape
    assert count(lambda s: "&amp;" in s and "<" in s) >= 10
    # mojibake and other things ftfy repairs
    assert count(lambda s: ftfy.fix_text(s) != s) >= 40
    # odd whitespace
    assert count(lambda s: "\xa0" in s or "\u200b" in s or "\t" in s) >= 10
    # upper-case contractions
    assert count(lambda s: any(c in s for c in ("'S", "'T", "'RE", "'LL"))) >= 10
    assert all(len(tok.encode(text)) > 77 for text in LONG)


# -- golden values
# --------------------------------------------------------------------------------------


def test_hello_world_golden():
    tokens = T.tokenize("Hello World!")
    assert tokens.shape == (1, 77)
    assert tokens.dtype == torch.long
    assert tokens[0].tolist() == [49406, 3306, 1002, 256, 49407] + [0] * 72


def test_vocabulary_layout(tok):
    assert T.VOCAB_SIZE == tok.vocab_size == len(tok.decoder) == 49408
    assert len(tok.merges) == T.NUM_MERGES == 48894
    assert (tok.sot_token_id, tok.eot_token_id) == (SOT, EOT)
    assert tok.encoder[T.SOT_TOKEN] == SOT and tok.decoder[EOT] == T.EOT_TOKEN
    assert tok.encoder["!"] == 0  # the padding id is also the byte "!"
    assert tok.encoder["!</w>"] == 256  # first end-of-word variant
    assert tok.encoder["i" + "n"] == 512  # first merge in the file
    assert tok.encoder["hello</w>"] == 3306


def test_byte_table():
    table = T.bytes_to_unicode()
    assert sorted(table) == list(range(256))
    assert len(set(table.values())) == 256
    assert all(ch.isprintable() and not ch.isspace() for ch in table.values())
    assert table[ord("a")] == "a" and table[ord("~")] == "~" and table[0xE9] == "é"
    assert table[32] == "Ġ" and table[0] == "Ā"  # shifted bytes start at U+0100
    table[0] = "changed"
    assert T.bytes_to_unicode()[0] == "Ā"  # callers get a copy


def test_merges_file_is_package_data():
    data = importlib.resources.files("clip_ref").joinpath(T.MERGES_FILE).read_bytes()
    assert hashlib.sha256(data).hexdigest() == MERGES_SHA256
    notice = (
        importlib.resources.files("clip_ref")
        .joinpath("LICENSE-bpe_simple_vocab_16e6.txt")
        .read_text()
    )
    assert "Copyright (c) 2021 OpenAI" in notice and "MIT License" in notice
    assert T.load_merges(3) == [("i", "n"), ("t", "h"), ("a", "n")]


def test_tokenizer_is_built_lazily():
    code = (
        "import clip_ref, clip_ref.tokenizer as t\n"
        "assert t.get_tokenizer.cache_info().currsize == 0\n"
        "assert t.tokenize('a dog')[0, 0].item() == 49406\n"
        "assert t.get_tokenizer.cache_info().currsize == 1\n"
        "assert clip_ref.tokenize is t.tokenize and clip_ref.Tokenizer is t.Tokenizer\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_docstring_examples():
    assert doctest.testmod(T).failed == 0


def test_cleaning_and_pre_tokens():
    assert T.clean_text("  A&amp;amp;B\t\n C\xa0D  ") == "a&b c d"
    assert T.clean_text("cafÃ©") == "café"
    # twice, since ftfy skips text with "<"
    assert T.clean_text("<b>&amp;amp;</b>") == "<b>&</b>"
    assert T.pre_tokenize("It's 42 dogs!!") == ["it", "'s", "4", "2", "dogs", "!!"]
    assert T.pre_tokenize("DON'T stop") == ["don", "'t", "stop"]
    assert T.pre_tokenize("東京タワー 😀👍🏽") == ["東京タワー", "😀👍🏽"]


def test_bpe_and_steps(tok, openai_tok):
    assert tok.bpe("hello") == ["hello</w>"]
    steps = tok.bpe_steps("category")
    assert steps[0] == ["c", "a", "t", "e", "g", "o", "r", "y</w>"]
    assert steps[-1] == tok.bpe("category") == ["category</w>"]
    for word in ["photography", "naïve", "東京タワー", "👨‍👩‍👧‍👦", "!!!", "x"]:
        steps = tok.bpe_steps(word)
        encoded = "".join(tok.byte_encoder[b] for b in word.encode("utf-8"))
        assert steps[0] == list(encoded[:-1]) + [encoded[-1] + "</w>"]
        # merges never change the text
        assert all("".join(step) == encoded + "</w>" for step in steps)
        # each step merges something
        assert all(len(b) < len(a) for a, b in zip(steps, steps[1:]))
        assert steps[-1] == tok.bpe(word) == openai_tok.bpe(encoded).split(" ")
        assert all(symbol in tok.encoder for symbol in steps[-1])
    with pytest.raises(ValueError):
        tok.bpe("")


def test_smaller_merge_table():
    base = T.Tokenizer(T.load_merges(0))
    assert base.vocab_size == 514 and base.sot_token_id == 512
    assert base.encode("hi") == [base.encoder["h"], base.encoder["i</w>"]]
    assert base.decode(base.encode("Hi there!")) == "hi there !"
    small = T.Tokenizer(T.load_merges(1000))
    assert small.vocab_size == 1514 and small.eot_token_id == 1513
    caption = "a photograph of a golden retriever playing in the snow"
    full = T.get_tokenizer()
    assert (
        len(base.encode(caption))
        > len(small.encode(caption))
        > len(full.encode(caption))
    )
    assert (
        base.decode(base.encode(caption))
        == small.decode(small.encode(caption))
        == caption
    )


# -- parity with OpenAI's tokenizer
# -----------------------------------------------------------------


def test_encode_matches_openai(tok, openai_tok):
    mismatches = [
        text for text in CORPUS if tok.encode(text) != openai_tok.encode(text)
    ]
    assert not mismatches, (
        f"{len(mismatches)} of {len(CORPUS)} differ, e.g. {mismatches[:3]!r}"
    )


def test_tokenize_matches_openai_clip_tokenize():
    fits = [text for text in CORPUS if len(T.get_tokenizer().encode(text)) <= 75]
    assert len(fits) >= 480
    ours = T.tokenize(fits)
    theirs = clip.tokenize(fits)
    assert ours.shape == theirs.shape == (len(fits), 77)
    assert torch.equal(ours, theirs.long())


def test_truncation_matches_openai():
    ours = T.tokenize(LONG, truncate=True)
    theirs = clip.tokenize(LONG, truncate=True)
    assert torch.equal(ours, theirs.long())
    assert (ours[:, -1] == EOT).all()
    short = T.tokenize(CORPUS[:50], context_length=8, truncate=True)
    assert torch.equal(
        short, clip.tokenize(CORPUS[:50], context_length=8, truncate=True).long()
    )


@pytest.mark.parametrize("index", range(0, len(LONG), 3))
def test_long_text_raises_in_both(index):
    with pytest.raises(ValueError, match="truncate=True"):
        T.tokenize(LONG[index])
    with pytest.raises(RuntimeError):
        clip.tokenize(LONG[index])


def test_decode_matches_openai(tok, openai_tok):
    for text in CORPUS:
        ids = tok.encode(text)
        theirs = openai_tok.decode(ids)
        assert tok.decode(ids) == (theirs[:-1] if theirs.endswith(" ") else theirs), (
            text
        )


# -- literal special-token strings are ordinary text
# ------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "a photo of a cat<|endoftext|> wearing a red hat",
        "a photo of a cat <|ENDOFTEXT|> wearing a red hat",
        "a photo of a cat &lt;|endoftext|&gt; wearing a red hat",
        "<|startoftext|>a photo of a cat <|startoftext|> wearing a red hat",
    ],
)
def test_literal_special_tokens_are_text(tok, text):
    row = T.tokenize(text)[0]
    ids = row.tolist()
    assert ids[0] == SOT and ids.count(SOT) == 1
    assert ids.count(EOT) == 1
    end = ids.index(EOT)
    assert end == len(tok.encode(text)) + 1 and all(i == 0 for i in ids[end + 1 :])
    assert tok.decode(row).endswith("wearing a red hat")
    tail = tok.encode("wearing a red hat")
    # the words after the literal reach the EOT position
    assert ids[end - len(tail) : end] == tail
    assert row.argmax().item() == end  # where CLIP pools the text feature

    # OpenAI's tokenizer inserts a special id for the literal.
    theirs = clip.tokenize(text)[0].tolist()
    assert theirs.count(EOT) + theirs.count(SOT) >= 3
    if "endoftext" in text:
        # pooling would stop before "wearing"
        assert theirs.index(EOT) < theirs.index(tail[0])


# -- properties
# --------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(
    texts=st.lists(st.text(max_size=120), min_size=1, max_size=3),
    context_length=st.integers(2, 80),
)
def test_any_text_gives_well_formed_rows(texts, context_length):
    tok = T.get_tokenizer()
    rows = tok.tokenize(texts, context_length=context_length, truncate=True)
    assert rows.shape == (len(texts), context_length) and rows.dtype == torch.long
    for text, row in zip(texts, rows.tolist()):
        assert row[0] == SOT and row.count(SOT) == 1
        assert row.count(EOT) == 1
        end = row.index(EOT)
        assert all(i == 0 for i in row[end + 1 :])
        ids = tok.encode(text)
        assert all(0 <= i < SOT for i in ids)  # user text never yields a special id
        assert row[1:end] == ids[: end - 1]  # truncation keeps a prefix


@PROPERTY_SETTINGS
@given(text=st.text(max_size=80))
def test_any_text_matches_openai(text):
    assume(not has_literal_special(text))
    assert T.get_tokenizer().encode(text) == _openai_tokenizer().encode(text)


@PROPERTY_SETTINGS
@given(text=st.text(alphabet=string.ascii_letters + " \t\n", max_size=100))
def test_ascii_roundtrip(text):
    tok = T.get_tokenizer()
    assert tok.decode(tok.encode(text)) == " ".join(text.lower().split())


_OPENAI = []


def _openai_tokenizer() -> SimpleTokenizer:
    if not _OPENAI:
        _OPENAI.append(SimpleTokenizer())
    return _OPENAI[0]


# -- edge cases and errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\t\n\u3000\xa0"])
def test_empty_text(text):
    assert T.tokenize(text)[0].tolist() == [SOT, EOT] + [0] * 75


def test_batches():
    assert T.tokenize([]).shape == (0, 77)
    rows = T.tokenize(("a dog", "a cat"), context_length=10)
    assert rows.shape == (2, 10)
    assert torch.equal(rows[1], T.tokenize("a cat", context_length=10)[0])


def test_truncate_keeps_context_with_eot_last(tok):
    text = " ".join(["dog"] * 100)
    row = T.tokenize(text, truncate=True)[0].tolist()
    assert row == [SOT] + tok.encode(text)[:75] + [EOT]
    assert T.tokenize("hello world", context_length=2, truncate=True)[0].tolist() == [
        SOT,
        EOT,
    ]
    assert T.tokenize("hello", context_length=3)[0].tolist() == [SOT, 3306, EOT]


def test_too_long_message(tok):
    text = "a picture of " + "very " * 200 + "long text"
    count = len(tok.encode(text)) + 2
    with pytest.raises(ValueError) as info:
        T.tokenize(["fine", text])
    message = str(info.value)
    assert f"encodes to {count} tokens" in message
    assert (
        "texts[1]" in message
        and "context_length=77" in message
        and "truncate=True" in message
    )
    # the text is shortened
    assert "a picture of very" in message and len(message) < 400


@pytest.mark.parametrize(
    "bad",
    [b"bytes", bytearray(b"x"), None, 5, {"a set"}, ["ok", 1], ("ok", b"no"), [None]],
)
def test_bad_text_types(bad):
    with pytest.raises(TypeError, match="str"):
        T.tokenize(bad)


def test_bad_arguments(tok):
    with pytest.raises(ValueError, match="at least 2"):
        T.tokenize("a", context_length=1)
    for bad in (1.5, "77", True, None):
        with pytest.raises(TypeError, match="context_length"):
            T.tokenize("a", context_length=bad)
    with pytest.raises(TypeError, match="truncate"):
        T.tokenize("a", truncate="yes")
    with pytest.raises(TypeError):
        tok.encode(b"bytes")


def test_decode(tok):
    ids = tok.encode("A Dog!")
    assert tok.decode(ids) == "a dog !"
    assert (
        tok.decode([SOT, *ids, EOT, *tok.encode("ignored after the end")]) == "a dog !"
    )
    assert tok.decode(T.tokenize("Hello World!")[0]) == "hello world !"
    assert tok.decode([]) == ""
    assert tok.decode(tok.encode("naïve 東京 👨‍👩‍👧‍👦")) == "naïve 東京 👨‍👩‍👧‍👦"
    assert tok.decode(tok.encode("a <|endoftext|> b")) == "a <| endoftext |> b"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.decode([49408])
    with pytest.raises(ValueError, match="one row"):
        tok.decode(T.tokenize(["a", "b"]))
    with pytest.raises(TypeError):
        tok.decode([1.5])


def test_the_special_token_ids_are_exported_and_are_openais():
    reference = SimpleTokenizer().encoder
    assert (
        T.SOT_TOKEN_ID == reference["<|startoftext|>"] == T.get_tokenizer().sot_token_id
    )
    assert (
        T.EOT_TOKEN_ID == reference["<|endoftext|>"] == T.get_tokenizer().eot_token_id
    )

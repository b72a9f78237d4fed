"""Byte-level BPE tokenizer for CLIP's text encoder (Radford et al., 2021, §2.4).

The paper's text encoder reads "a lower-cased byte pair encoding (BPE) representation of
the text", bracketed by start and end tokens and capped in length (§2.4; the released
models use rows of 77 ids). This module turns strings into the ``[N, 77]`` integer
tensors that :meth:`CLIP.encode_text` consumes, id for id as OpenAI's tokenizer does
(the tests check this on hundreds of strings). The pipeline, one function each:

1. :func:`clean_text`: repair mojibake with ftfy, undo HTML escaping (twice, for doubly
   escaped web text), collapse whitespace, lower-case.
2. :func:`pre_tokenize`: split into pre-tokens (contractions, letter runs, single
   digits, runs of other symbols). BPE never merges across pre-tokens, so "dog." and
   "dog" share the token "dog".
3. :func:`bytes_to_unicode`: write each pre-token's UTF-8 bytes as printable characters.
4. :meth:`Tokenizer.bpe`: apply the learned merges, lowest rank first
   (:meth:`Tokenizer.bpe_steps` shows every step), then look up the ids.
5. :meth:`Tokenizer.tokenize`: add ``<|startoftext|>`` and ``<|endoftext|>``, pad with 0
to the context.

Why these choices:

- Byte level: BPE starts from the 256 possible bytes rather than from characters, so any
  Unicode string (Chinese, emoji, a stray control character) can be encoded and there is
  no "unknown" token.
- End-of-word marker: the last symbol of each pre-token carries ``</w>``, so "cat" at
  the end of a word (``cat</w>``) and "cat" inside "category" are different tokens, and
  decoding knows where the spaces go.
- Lower-casing: "Dog", "DOG" and "dog" share one set of tokens, so the fixed vocabulary
  covers more distinct words; case carries little meaning in image captions.

Vocabulary: 49,408 ids = 256 byte symbols + 256 of them with ``</w>`` + the first 48,894
merges of ``bpe_simple_vocab_16e6.txt.gz`` + 2 special tokens. (The paper's 49,152 = 256
+ 48,894 + 2 leaves out the 256 end-of-word variants.) ``<|startoftext|>`` = 49406,
``<|endoftext|>`` = 49407; padding uses id 0, which is also the token "!": that is
harmless because the text encoder reads its feature at the end token, and the causal
mask stops the end token from seeing anything after it.

Special-token strings typed by a user are ordinary text here. OpenAI's tokenizer turns a
literal ``<|endoftext|>`` inside a caption into the real end token, and because CLIP
reads the text feature at the end token, every word after it is silently ignored. In
``clip_ref`` only the tokenizer itself inserts start and end tokens; a literal
``<|startoftext|>`` or ``<|endoftext|>`` in the input is split and encoded like any
other punctuation and letters, so it can never cut a caption short. This is the one
place where ``clip_ref`` deliberately gives different ids from OpenAI's tokenizer.

The tokenizer is built lazily, on the first call of :func:`get_tokenizer` or
:func:`tokenize`, from the merges file shipped as package data (MIT licence, Copyright
(c) 2021 OpenAI; see ``LICENSE-bpe_simple_vocab_16e6.txt``).
"""

from __future__ import annotations

import functools
import gzip
import html
import importlib.resources
import numbers
import operator
from collections.abc import Iterator, Sequence

import ftfy
import regex
import torch

SOT_TOKEN = "<|startoftext|>"
EOT_TOKEN = "<|endoftext|>"
END_OF_WORD = "</w>"
CONTEXT_LENGTH = 77
NUM_MERGES = 48_894  # 49,408 - 256 - 256 - 2
VOCAB_SIZE = 49_408
# The special tokens come last in the vocabulary; padding is id 0.
SOT_TOKEN_ID = VOCAB_SIZE - 2  # 49,406
EOT_TOKEN_ID = VOCAB_SIZE - 1  # 49,407
MERGES_FILE = "bpe_simple_vocab_16e6.txt.gz"

# Pre-tokens, tried left to right at each position; whitespace matches nothing and is
# skipped. IGNORECASE looks pointless on lower-cased text, but the released tokenizer
# uses it and it changes two things, kept for parity: "'ſ" (long s) counts as the
# contraction "'s", and U+0345 (combining ypogegrammeni, which case-folds to the letter
# iota) matches no branch and is dropped.
_PRE_TOKEN_PATTERN = regex.compile(
    r"""
      '(?:s|t|re|ve|m|ll|d)   # English contractions: "it's" -> "it", "'s"
    | \p{L}+                  # a run of letters, in any script
    | \p{N}                   # a single digit: numbers are spelled digit by digit
    | [^\s\p{L}\p{N}]+        # a run of anything else but whitespace (punctuation)
    """,
    regex.IGNORECASE | regex.VERBOSE,
)
_WHITESPACE = regex.compile(r"\s+")

_MAX_CACHED_WORDS = (
    100_000  # the BPE cache is emptied when it grows past this many pre-tokens
)


class TextTooLongError(ValueError, RuntimeError):
    """A text encodes to more tokens than the context holds. Both a ``ValueError`` and,
    because OpenAI's ``clip.tokenize`` raises ``RuntimeError`` here, a
    ``RuntimeError``, so client code's ``except RuntimeError`` still catches it."""


@functools.cache
def _byte_table() -> tuple[tuple[int, str], ...]:
    printable = [
        *range(ord("!"), ord("~") + 1),  # ASCII without space and control characters
        *range(ord("¡"), ord("¬") + 1),  # Latin-1 up to (not including) the soft hyphen
        *range(ord("®"), ord("ÿ") + 1),  # the rest of Latin-1
    ]
    table = {byte: chr(byte) for byte in printable}
    # The 68 bytes left (space, control characters, NBSP, soft hyphen) get stand-ins
    # from U+0100 on, so every symbol is a visible character and BPE never has to handle
    # whitespace.
    unprintable = [byte for byte in range(256) if byte not in table]
    table.update({byte: chr(256 + k) for k, byte in enumerate(unprintable)})
    return tuple(sorted(table.items()))


def bytes_to_unicode() -> dict[int, str]:
    """The table from each of the 256 byte values to the printable character that stands
    for it.

    BPE works on strings, and its merges file is text, so every byte needs a character
    of its own that is neither whitespace nor a control character. Printable Latin-1
    bytes stand for themselves (``ord("a") -> "a"``); the other 68 are shifted to
    ``chr(256 + k)`` (the space byte 32 becomes ``"Ġ"``). The returned dict is a fresh
    copy in byte order.
    """
    return dict(_byte_table())


def clean_text(text: str) -> str:
    """Normalize a string the way CLIP's training captions were: ftfy, HTML-unescape
    twice, whitespace, case.

    ftfy repairs mojibake ("cafÃ©" -> "café"); web captions are often HTML-escaped once
    or twice ("&amp;amp;"); all whitespace runs (tabs, newlines, NBSP) become one space;
    then lower-case.
    """
    text = html.unescape(html.unescape(ftfy.fix_text(text)))
    # str.strip also removes the separators U+001C..U+001F, which regex's \s does not
    # match: at the ends they vanish, inside the text they stay (as symbols), exactly as
    # in the released tokenizer.
    return _WHITESPACE.sub(" ", text).strip().lower()


def pre_tokenize(text: str) -> list[str]:
    """Clean ``text`` and split it into the pre-tokens that BPE encodes one by one.

    >>> pre_tokenize("It's 42 dogs!!")
    ['it', "'s", '4', '2', 'dogs', '!!']
    """
    return _PRE_TOKEN_PATTERN.findall(clean_text(text))


def load_merges(limit: int = NUM_MERGES) -> list[tuple[str, str]]:
    """The first ``limit`` BPE merges, in rank order, from the merges file shipped with
    ``clip_ref``.

    Each merge is a pair of symbols (in the :func:`bytes_to_unicode` alphabet) to be
    joined; its position in the list is its rank: lower ranks were frequent in the
    training text and apply first.
    """
    if isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 0:
        raise ValueError(f"limit must be a non-negative int, got {limit!r}")
    resource = importlib.resources.files(__package__).joinpath(MERGES_FILE)
    lines = (
        gzip.decompress(resource.read_bytes()).decode("utf-8").rstrip("\n").split("\n")
    )
    # Line 0 is a header ('"bpe_simple_vocab_16e6.txt#version: 0.2'), one merge per line
    # after it.
    if "#version" not in lines[0]:
        raise ValueError(
            f"{MERGES_FILE} does not start with a '#version' header: {lines[0][:80]!r}"
        )
    body = lines[1 : 1 + limit]
    if len(body) < limit:
        raise ValueError(f"{MERGES_FILE} has fewer than {limit} merges")
    merges = []
    for number, line in enumerate(body, start=2):
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(
                f"{MERGES_FILE}, line {number}: expected two symbols, got {line!r}"
            )
        merges.append((parts[0], parts[1]))
    return merges


def _merge_pair(symbols: list[str], first: str, second: str) -> list[str]:
    """Join every non-overlapping occurrence of ``first, second``, scanning left to
    right."""
    merged = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == first and symbols[i + 1] == second:
            merged.append(first + second)
            i += 2
        else:
            merged.append(symbols[i])
            i += 1
    return merged


TextInput = str | Sequence[str]


class Tokenizer:
    """CLIP's byte-level BPE tokenizer.

    Use :func:`get_tokenizer` for the released tokenizer (built once, on first use).
    Passing ``merges`` (for example ``load_merges(1000)``) builds a smaller one, which
    is useful to watch how the token count of a caption falls as merges are added; its
    special-token ids are then the last two ids.

    Attributes:
        encoder: symbol (e.g. ``"dog</w>"``) -> id; ``decoder``: id -> symbol.
        bpe_ranks: merge pair -> rank (lower merges first).
        byte_encoder / byte_decoder: the :func:`bytes_to_unicode` table and its inverse.
        sot_token_id, eot_token_id: ids of ``<|startoftext|>`` and ``<|endoftext|>``.
    """

    def __init__(self, merges: Sequence[tuple[str, str]] | None = None):
        merges = load_merges() if merges is None else [tuple(m) for m in merges]
        for merge in merges:
            if len(merge) != 2 or not all(isinstance(s, str) and s for s in merge):
                raise ValueError(
                    f"each merge must be a pair of non-empty strings, got {merge!r}"
                )
        self.merges: tuple[tuple[str, str], ...] = tuple(merges)
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {symbol: byte for byte, symbol in self.byte_encoder.items()}

        # Ids: the 256 byte symbols in code-point order, the same with </w>, one id per
        # merge result in rank order, then the two special tokens.
        byte_symbols = sorted(self.byte_encoder.values())
        vocab = byte_symbols + [s + END_OF_WORD for s in byte_symbols]
        vocab += [first + second for first, second in self.merges]
        vocab += [SOT_TOKEN, EOT_TOKEN]
        self.encoder: dict[str, int] = {symbol: i for i, symbol in enumerate(vocab)}
        if len(self.encoder) != len(vocab):
            raise ValueError(
                "two merges produce the same symbol; the vocabulary would be ambiguous"
            )
        self.decoder: dict[int, str] = dict(enumerate(vocab))
        self.bpe_ranks: dict[tuple[str, str], int] = {
            m: rank for rank, m in enumerate(self.merges)
        }
        if len(self.bpe_ranks) != len(self.merges):
            raise ValueError("the merges list contains a pair twice")
        self.sot_token_id: int = self.encoder[SOT_TOKEN]
        self.eot_token_id: int = self.encoder[EOT_TOKEN]
        self._cache: dict[str, tuple[str, ...]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)})"

    # -- BPE on one pre-token
    # ------------------------------------------------------------------------

    def _initial_symbols(self, word: str) -> list[str]:
        if not isinstance(word, str) or not word:
            raise ValueError(f"expected a non-empty pre-token string, got {word!r}")
        symbols = [self.byte_encoder[byte] for byte in word.encode("utf-8")]
        symbols[-1] += END_OF_WORD
        return symbols

    def _merge_steps(self, symbols: list[str]) -> Iterator[list[str]]:
        """Yield the symbols after each merge: always the applicable merge of lowest
        rank."""
        ranks = self.bpe_ranks
        while len(symbols) > 1:
            candidates = [pair for pair in zip(symbols, symbols[1:]) if pair in ranks]
            if not candidates:
                return
            first, second = min(candidates, key=ranks.__getitem__)
            symbols = _merge_pair(symbols, first, second)
            yield symbols

    def _bpe_cached(self, word: str) -> tuple[str, ...]:
        symbols = self._cache.get(word)
        if symbols is None:
            symbols = self._initial_symbols(word)
            for state in self._merge_steps(symbols):  # run BPE to the end
                symbols = state  # keep the last state
            if len(self._cache) >= _MAX_CACHED_WORDS:
                self._cache.clear()
            symbols = self._cache[word] = tuple(symbols)
        return symbols

    def bpe(self, word: str) -> list[str]:
        """The vocabulary symbols of one pre-token after all merges.

        ``word`` is a pre-token as :func:`pre_tokenize` returns it (plain text); its
        UTF-8 bytes are mapped with :func:`bytes_to_unicode` first, so the symbols are
        keys of :attr:`encoder`.

        >>> get_tokenizer().bpe("hello")
        ['hello</w>']
        """
        return list(self._bpe_cached(word))

    def bpe_steps(self, word: str) -> list[list[str]]:
        """Every state of BPE on one pre-token: the byte symbols first, then the symbols
        after each merge.

        The last entry equals :meth:`bpe`. Each step applies the merge of lowest rank
        among adjacent pairs, everywhere it occurs, until no adjacent pair is a known
        merge.
        """
        first = self._initial_symbols(word)
        return [first, *self._merge_steps(first)]

    # -- strings <-> ids
    # ------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """The token ids of ``text``, without start and end tokens.

        Special-token strings in ``text`` are encoded as ordinary characters (see the
        module docstring).
        """
        if not isinstance(text, str):
            raise TypeError(f"encode() expects a str, got {type(text).__name__}")
        encoder = self.encoder
        return [
            encoder[symbol]
            for word in pre_tokenize(text)
            for symbol in self._bpe_cached(word)
        ]

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """The text of a sequence of ids: start tokens are skipped, and decoding stops
        at the first end token.

        Stopping at the end token makes a padded row of :meth:`tokenize` decode cleanly.
        Each ``</w>`` becomes a space, and the space after the last word is dropped. The
        result is the cleaned, lower-cased text, with a space after every pre-token
        (``"hello!"`` decodes as ``"hello !"``). Byte sequences that are not valid UTF-8
        (possible for arbitrary ids) decode to U+FFFD.
        """
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError(
                    "decode() expects one row of ids, got a tensor of shape "
                    f"{tuple(ids.shape)}"
                )
            ids = ids.tolist()
        data = bytearray()
        ends_with_marker = False
        for position, raw_id in enumerate(ids):
            token_id = operator.index(raw_id)
            if token_id == self.eot_token_id:
                break
            if token_id == self.sot_token_id:
                continue
            symbol = self.decoder.get(token_id)
            if symbol is None:
                raise ValueError(
                    f"id {token_id} at position {position} is not in the vocabulary "
                    f"(0..{self.vocab_size - 1})"
                )
            ends_with_marker = symbol.endswith(END_OF_WORD)
            if ends_with_marker:
                symbol = symbol[: -len(END_OF_WORD)]
            data += bytes(self.byte_decoder[ch] for ch in symbol)
            if ends_with_marker:
                data += b" "
        if ends_with_marker:
            del data[-1]
        return data.decode("utf-8", errors="replace")

    def tokenize(
        self,
        texts: TextInput,
        context_length: int = CONTEXT_LENGTH,
        truncate: bool = False,
    ) -> torch.Tensor:
        """Token ids for a batch of texts, shape ``[N, context_length]``, dtype
        ``torch.long``.

        Each row is ``<|startoftext|>``, the text's tokens, ``<|endoftext|>``, then
        zeros. A text that does not fit raises :class:`TextTooLongError` (a
        ``ValueError`` and, as in OpenAI's ``clip``, a ``RuntimeError``), unless
        ``truncate=True``,
        which keeps the first ``context_length`` ids and puts ``<|endoftext|>`` last.

        User text is always text: a literal ``"<|endoftext|>"`` or ``"<|startoftext|>"``
        in ``texts`` is encoded as ordinary characters, so each row has exactly one end
        token, at the end of the whole caption. (OpenAI's tokenizer would insert a real
        end token there and the model would ignore every word after it.)

        Args:
            texts: one string, or a list or tuple of strings (N = 1 for a single
            string).
            context_length: row length; every released CLIP model uses 77.
            truncate: cut texts that are too long instead of raising.
        """
        texts = _as_text_list(texts)
        if isinstance(context_length, bool) or not isinstance(
            context_length, numbers.Integral
        ):
            raise TypeError(
                f"context_length must be an int, got {type(context_length).__name__}"
            )
        context_length = int(context_length)
        if context_length < 2:
            raise ValueError(
                "context_length must be at least 2 (start and end token), got "
                f"{context_length}"
            )
        if not isinstance(truncate, bool):
            raise TypeError(f"truncate must be True or False, got {truncate!r}")

        # [N, L], 0 = padding
        rows = torch.zeros(len(texts), context_length, dtype=torch.long)
        for n, text in enumerate(texts):
            ids = [self.sot_token_id, *self.encode(text), self.eot_token_id]
            if len(ids) > context_length:
                if not truncate:
                    raise TextTooLongError(
                        f"texts[{n}] {_shorten(text)} encodes to {len(ids)} tokens "
                        "(including the start and end tokens), more than "
                        f"context_length={context_length}; shorten it, or pass "
                        f"truncate=True to keep the first {context_length} tokens with "
                        "the end token last"
                    )
                ids = ids[: context_length - 1] + [self.eot_token_id]
            rows[n, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return rows


def _as_text_list(texts: TextInput) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    if not isinstance(texts, (list, tuple)):
        hint = (
            " (decode bytes to str first)"
            if isinstance(texts, (bytes, bytearray))
            else ""
        )
        raise TypeError(
            "texts must be a str or a list/tuple of str, got "
            f"{type(texts).__name__}{hint}"
        )
    for n, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                f"texts must be a str or a list/tuple of str, but texts[{n}] is "
                f"{type(text).__name__}"
            )
    return list(texts)


def _shorten(text: str, limit: int = 60) -> str:
    if len(text) <= limit:
        return repr(text)
    return f"{text[: limit - 3]!r}... ({len(text)} characters)"


@functools.cache
def get_tokenizer() -> Tokenizer:
    """The released CLIP tokenizer, built on first use and shared afterwards."""
    return Tokenizer()


def tokenize(
    texts: TextInput, context_length: int = CONTEXT_LENGTH, truncate: bool = False
) -> torch.Tensor:
    """Tokenize with the released CLIP tokenizer: see :meth:`Tokenizer.tokenize`.

    ``clip_ref.tokenize(["a diagram", "a dog"])`` gives a ``[2, 77]`` ``torch.long``
    tensor, ready for ``model.encode_text``. Literal special-token strings in the texts
    are ordinary text.
    """
    return get_tokenizer().tokenize(
        texts, context_length=context_length, truncate=truncate
    )

"""Analyse Chinese and mixed Chinese/Latin text into CJK unigrams and bigrams for the Whoosh index."""
# Chosen by measurement: bench/analyzers.py on the relevance set tests/search/relevance.yaml
# (240 documents, 74 queries) and on 20,000 generated dossiers (300 queries), CPU time:
#
#                                  relevance set   20k generated   build   postings  index  query ms
#                                  recall  prec.   recall  prec.   docs/s  million   MiB    p50 / p99
#   unigram+bigram (this module)   1.000   1.000   1.000   1.000     742   1.55      22.2   1.3 / 348
#   unigrams, phrase queries       1.000   1.000   1.000   1.000    1934   0.85      13.6   5.1 / 674
#   jieba ChineseAnalyzer          0.842   0.932   0.741   0.995     822   0.60      13.6   1.2 / 183
#   jieba + unigrams               0.888   0.982   0.953   0.998     469   1.38      21.5   1.2 / 151
#   Whoosh StandardAnalyzer        0.277   0.968   0.148   0.974    3335   0.14      12.1   0.3 /  10
#
# jieba loses whatever it segments another way (张伟 inside 张伟明, 古丽 inside 阿依古丽, and
# every single character on its own); only the n-gram candidates equal the substring scan.
# Bigrams cost 1.8x the postings of unigrams but answer names 4x faster (p50 0.65 against
# 2.8 ms), employer fragments 6x (8.5 against 54 ms) and certificate phrases 2.6x (89 against
# 232 ms). piece_query tiles long phrases with bigrams that do not overlap: about half the posting
# lists, about 1.5x faster than a phrase of every bigram, and as exact.
#
# The reference is a brute-force scan of the same normalised fields (substring_matches): CJK
# text matches as a substring, while a run of Latin letters or digits matches as a whole word,
# so 2019 finds 2019年 but not Z2019210000123, and certificate numbers and USCCs are looked up
# whole. Against a pure substring scan that costs recall 0.968 on the relevance set (the 8
# queries with a word cut out of a longer one) and 0.994 on the generated set; precision is 1.
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import lru_cache

from whoosh.analysis import CompositeAnalyzer, Token, Tokenizer
from whoosh.query import And, NullQuery, Or, SpanNear2, Term

# People write the dot in minority names (阿依古丽·买买提) with whichever key is at hand.
_NAME_DOT = "\u00b7"
_NAME_DOTS = str.maketrans(dict.fromkeys("\u2027\u2022\u2219\u22c5\u30fb\uff65\u16eb\u0387\u318d", _NAME_DOT))

_CJK_RANGES = (
    "\u3005-\u3007"  # 々 〆 〇 (〇 writes zero in 二〇一九年)
    "\u3040-\u30fa"  # kana
    "\u3400-\u4dbf"  # Han extension A
    "\u4e00-\u9fff"  # Han
    "\uac00-\ud7af"  # Hangul syllables
    "\ue000-\uf8ff"  # private use: where older GBK systems put rare characters of names
    "\uf900-\ufaff"  # Han compatibility (NFKC maps most of them to the unified ones)
    "\U00020000-\U000323af"  # Han extensions B-I and the compatibility supplement: rare characters in names
)
# Control and format characters (zero-width space, BOM, soft hyphen) separate like spaces.
_SPACES = r"\s\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff"
CJK, WORD, MARK, SPACE = "cjk", "word", "mark", "space"
# One regex decides every character's kind, for the tokenizer and for char_kind alike.
_UNIT = re.compile(
    rf"(?P<{CJK}>[{_CJK_RANGES}])|(?P<{WORD}>[^\W_{_CJK_RANGES}]+)|(?P<{SPACE}>[{_SPACES}]+)|(?P<{MARK}>.)",
    re.DOTALL,
)


# The same kinds as _UNIT, with a run of CJK characters as one match: index_frequencies splits it itself.
_RUN = re.compile(
    rf"(?P<{CJK}>[{_CJK_RANGES}]+)|(?P<{WORD}>[^\W_{_CJK_RANGES}]+)|(?P<{SPACE}>[{_SPACES}]+)|(?P<{MARK}>.)",
    re.DOTALL,
)


@lru_cache(maxsize=65536)
def normalize_char(char: str) -> str:
    # NFKC folds full-width Ｚ２０１９ and compatibility ideographs; casefold makes ABC find abc.
    return unicodedata.normalize("NFKC", char).casefold().translate(_NAME_DOTS)


def normalize(text: str) -> str:
    """Return text as the index sees it: NFKC, case-folded, one kind of name dot."""
    # Char by char, so that every index token maps back to a span of the original text;
    # on text already in NFKC (nearly all of it) that is the same as folding the whole.
    if unicodedata.is_normalized("NFKC", text):
        return text.casefold().translate(_NAME_DOTS)
    return "".join(map(normalize_char, text))


@lru_cache(maxsize=65536)
def char_kind(char: str) -> str:
    """Return whether a normalised character is CJK, part of a word, whitespace or a mark."""
    return _UNIT.match(char).lastgroup


def text_units(text: str, normalized: bool = False):
    """Yield (kind, text, position, startchar, endchar) for each unit of text.

    A unit is one CJK character, one run of letters and digits, or one punctuation mark.
    Whitespace yields no unit but skips a position, so no phrase matches across it.
    Query pieces come normalized: normalising once on each side keeps both sides alike.
    """
    normal = text if normalized else normalize(text)
    origin = None
    if len(normal) != len(text):
        # Some character expanded (㈱ is (株)): map each normalised offset back to its source.
        origin = [start for start, char in enumerate(text) for _ in normalize_char(char)]
        origin.append(len(text))
    position = 0
    for match in _UNIT.finditer(normal):
        kind = match.lastgroup
        if kind == SPACE:
            position += 1
            continue
        start, end = match.span()
        if origin is not None:
            start, end = origin[start], origin[end - 1] + 1
        yield kind, match.group(), position, start, end
        position += 1


class CJKBigramTokenizer(Tokenizer):
    """Emit each CJK character, each adjacent CJK pair, each word and each mark as a token.

    Tokens sit at unit positions: a bigram shares the position of its first character,
    so a phrase of query_terms() at consecutive positions is exactly a substring match.
    """

    def __call__(self, value, positions=False, chars=False, keeporiginal=False, removestops=True,
                 start_pos=0, start_char=0, tokenize=True, mode="", **kwargs):
        """Yield the tokens of value; in query mode, the terms of query_terms() instead."""
        token = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        if not tokenize:
            token.original = token.text = normalize(value)
            token.boost = 1.0
            if positions:
                token.pos = start_pos
            if chars:
                token.startchar, token.endchar = start_char, start_char + len(value)
            yield token
            return
        if mode == "query":
            # The parser hands over one word at a time, or a quoted phrase: a skipped position
            # between its pieces keeps it from matching across their boundary.
            position = start_pos
            for piece in _pieces(text_units(value)):
                for text, startchar, endchar in _phrase(piece):
                    token.original = token.text = text
                    token.boost = 1.0
                    if positions:
                        token.pos = position
                    if chars:
                        token.startchar, token.endchar = start_char + startchar, start_char + endchar
                    position += 1
                    yield token
                position += 1
            return
        units = list(text_units(value))
        def emit(text, position, startchar, endchar):
            token.original = token.text = text
            token.boost = 1.0
            if positions:
                token.pos = start_pos + position
            if chars:
                token.startchar, token.endchar = start_char + startchar, start_char + endchar
            return token

        for index, (kind, text, position, startchar, endchar) in enumerate(units):
            yield emit(text, position, startchar, endchar)
            if kind == CJK and index + 1 < len(units):
                next_kind, next_text, next_position, _, next_end = units[index + 1]
                if next_kind == CJK and next_position == position + 1:
                    # The bigram sits at its first character's position, so phrase queries line up.
                    yield emit(text + next_text, position, startchar, next_end)


def index_frequencies(value: str, *, normalized: bool = False) -> Counter:
    """Return how many times CJKBigramTokenizer emits each term of value (a field without positions)."""
    tokens: list[str] = []
    for match in _RUN.finditer(value if normalized else normalize(value)):
        kind, text = match.lastgroup, match.group()
        if kind == CJK:
            tokens += text
            tokens += map(str.__add__, text, text[1:])
        elif kind != SPACE:
            tokens.append(text)
    return Counter(tokens)  # counted in C


def chinese_analyzer() -> CompositeAnalyzer:
    """Return the analyzer for every Chinese or mixed-text field of the index."""
    return CompositeAnalyzer(CJKBigramTokenizer())


def _pieces(units):
    """Group units into the whitespace-separated pieces they came from."""
    piece = []
    for unit in units:
        if piece and unit[2] != piece[-1][2] + 1:
            yield piece
            piece = []
        piece.append(unit)
    if piece:
        yield piece


def _phrase(units) -> list[tuple[str, int, int]]:
    """Return (term, startchar, endchar) at consecutive positions for the units of one piece."""
    terms = []
    for index, (kind, text, _, startchar, endchar) in enumerate(units):
        if kind == CJK and index + 1 < len(units) and units[index + 1][0] == CJK:
            terms.append((text + units[index + 1][1], startchar, units[index + 1][4]))
        else:
            terms.append((text, startchar, endchar))
    # The last character is already inside the bigram before it.
    if len(units) >= 2 and units[-1][0] == CJK and units[-2][0] == CJK:
        terms.pop()
    return terms


def query_terms(piece: str) -> list[str]:
    """Return the terms, at consecutive positions, of the documents containing piece.

    One CJK character is its unigram, two are their bigram, three or more a phrase of
    overlapping bigrams; words and marks are themselves. piece holds no whitespace.
    """
    normal = normalize(piece)
    if any(char_kind(char) == SPACE for char in normal):
        raise ValueError(f"query_terms takes one whitespace-free piece, not {piece!r}")
    return [text for text, _, _ in _phrase(list(text_units(normal, normalized=True)))]


def query_pieces(text: str) -> list[str]:
    """Split typed text into the normalised pieces that must each occur in a document."""
    return "".join(" " if char_kind(char) == SPACE else char for char in normalize(text)).split()


def piece_cover(piece: str) -> list[tuple[int, str]]:
    """Return (offset, term) pairs that sit at those offsets from each other just where piece occurs.

    Bigrams tile the Han runs without overlapping: half the posting lists of the phrase of
    query_terms(), and as exact, since a bigram only spans two adjacent units and positions
    leave a gap for whitespace.
    """
    units = [(kind, text) for kind, text, _, _, _ in text_units(piece, normalized=True)]
    cover, index = [], 0
    while index < len(units):
        kind, text = units[index]
        if kind == CJK and index + 1 < len(units) and units[index + 1][0] == CJK:
            cover.append((index, text + units[index + 1][1]))
            index += 2
            continue
        if kind == CJK and index > 0 and units[index - 1][0] == CJK:
            # A run's odd last character: the bigram ending in it is rarer than its unigram.
            cover.append((index - 1, units[index - 1][1] + text))
        else:
            cover.append((index, text))
        index += 1
    return cover


def piece_query(fieldname: str, piece: str):
    """Return a Whoosh query for the documents whose field contains one piece of query_pieces()."""
    cover = piece_cover(piece)
    if not cover:
        return NullQuery
    query, end = Term(fieldname, cover[0][1]), cover[0][0]
    for offset, term in cover[1:]:
        # Each span ends at its last term, so the next term must be exactly this far on.
        gap = offset - end
        query = SpanNear2([query, Term(fieldname, term)], slop=gap, mindist=gap, ordered=True)
        end = offset
    return query


def text_query(fieldnames, text: str):
    """Return a Whoosh query: every piece of text occurs in one of fieldnames."""
    pieces = query_pieces(text)
    if not pieces:
        return NullQuery
    alternatives = [Or([piece_query(fieldname, piece) for fieldname in fieldnames]) for piece in pieces]
    # normalize() unwraps the one-element And and Or, so a plain name search stays one Term.
    return And(alternatives).normalize()


def substring_matches(field_texts, text: str) -> bool:
    """Tell whether every piece of text occurs in one of field_texts, as the index decides.

    The brute-force reference for the index: a piece occurs where it is a substring of the
    normalised field, except that a letter or digit at either end of the piece must not
    continue a longer word there (so a certificate number is matched whole).
    """
    pieces = query_pieces(text)
    if not pieces:
        return False
    normals = [normalize(field) for field in field_texts]
    return all(any(occurs(normal, piece) for normal in normals) for piece in pieces)


def occurs(haystack: str, piece: str) -> bool:
    """Tell whether piece is a substring of haystack that cuts no word at a word end of piece."""
    return next(_starts(haystack, piece), None) is not None


def occurrences(haystack: str, piece: str) -> int:
    """Return how often piece occurs in a normalised field, as occurs decides (overlaps count)."""
    return sum(1 for _ in _starts(haystack, piece))


def _starts(haystack: str, piece: str):
    """Yield each offset where piece occurs in haystack without cutting a word at a word end of piece."""
    word_first, word_last = char_kind(piece[0]) == WORD, char_kind(piece[-1]) == WORD
    start = haystack.find(piece)
    while start != -1:
        end = start + len(piece)
        cut_before = word_first and start > 0 and char_kind(haystack[start - 1]) == WORD
        cut_after = word_last and end < len(haystack) and char_kind(haystack[end]) == WORD
        if not cut_before and not cut_after:
            yield start
        start = haystack.find(piece, start + 1)


# Marks both ends of every run of letters and digits: a substring test on text so marked is occurs().
WORD_EDGE = "\x01"


def edge_marked(normal: str) -> str:
    """Return normalised text with WORD_EDGE around each run of letters and digits (pieces and fields alike).

    A piece marked so is a plain substring of a field marked so exactly where occurs() finds it:
    a word at either end of the piece must meet a marked run end, so it cannot cut a longer word.
    """
    return "".join(f"{WORD_EDGE}{match.group()}{WORD_EDGE}" if match.lastgroup == WORD else match.group()
                   for match in _RUN.finditer(normal))

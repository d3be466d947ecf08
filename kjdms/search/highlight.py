"""Snippets of a field around the pieces a search matched, as (text, matched) segments to mark up."""
from __future__ import annotations

import re

from ..validators import ID_NUMBER_IN_TEXT
from .analysis import normalize_char, query_pieces

CONTEXT = 24  # characters shown either side of a match
MAX_SNIPPETS = 2
# Attachment text may quote an ID number (a scanned card, the signed form): never show one whole.
_CUT_DIGITS = re.compile(r"[0-9Xx]{6,}")


def match_spans(text: str, pieces: list[str]) -> list[tuple[int, int]]:
    """Return the merged (start, end) spans of text where any piece occurs, as the index matches CJK."""
    normal, origin = [], []
    for offset, char in enumerate(text):
        folded = normalize_char(char)
        normal.append(folded)
        origin.extend([offset] * len(folded))
    haystack = "".join(normal)
    spans = []
    for piece in pieces:
        start = haystack.find(piece)
        while start != -1:
            spans.append((origin[start], origin[start + len(piece) - 1] + 1))
            start = haystack.find(piece, start + 1)
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def segments(text: str, typed: str, *, whole: bool = False) -> list[list[tuple[str, bool]]]:
    """Return up to MAX_SNIPPETS snippets of text around what typed matched (or the whole text marked).

    Each snippet is a list of (text, matched) pairs; the caller escapes and marks them up.
    """
    spans = match_spans(text, query_pieces(typed)) if text and typed else []
    if not spans:
        return []
    windows = [(0, len(text))] if whole else []
    if not whole:
        for start, end in spans:
            low, high = max(0, start - CONTEXT), min(len(text), end + CONTEXT)
            if windows and low <= windows[-1][1]:
                windows[-1] = (windows[-1][0], high)
            else:
                windows.append((low, high))
    snippets = []
    for low, high in windows[:MAX_SNIPPETS]:
        parts, cursor = [], low
        if low > 0:
            parts.append(("…", False))
        for start, end in spans:
            if end <= low or start >= high:
                continue
            start, end = max(start, low), min(end, high)
            if start > cursor:
                parts.append((text[cursor:start], False))
            parts.append((text[start:end], True))
            cursor = end
        if cursor < high:
            parts.append((text[cursor:high], False))
        if high < len(text):
            parts.append(("…", False))
        snippets.append([(re.sub(r"\s+", " ", part) if not matched else part, matched) for part, matched in parts])
    return snippets


def mask_id_numbers(parts: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """Return a snippet's segments with ID-like numbers masked, also when cut at the snippet's edge."""
    text = "".join(part for part, _ in parts)
    chars = list(text)
    for match in ID_NUMBER_IN_TEXT.finditer(text):
        for offset in range(match.start() + 4, match.end() - 4):
            chars[offset] = "*"
    # A number cut by the "…" of the snippet window cannot be recognised: hide the visible digits.
    edges = []
    if parts and parts[0] == ("…", False):
        edges.append(re.match(r"…([0-9Xx]*)", text))
    if parts and parts[-1] == ("…", False):
        edges.append(re.search(r"([0-9Xx]*)…$", text))
    for edge in edges:
        if edge and _CUT_DIGITS.fullmatch(edge.group(1)):
            for offset in range(edge.start(1), edge.end(1)):
                chars[offset] = "*"
    masked, start = [], 0
    for part, matched in parts:
        masked.append(("".join(chars[start:start + len(part)]), matched))
        start += len(part)
    return masked


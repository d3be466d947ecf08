"""What a person's name may hold: Han ideographs of every block, 〇, and one kind of middle dot."""
from __future__ import annotations

import re

# Every block of CJK ideographs (GB 18030-2022 requires the extensions: real names use them) and 〇,
# which Unicode counts as an ideograph (Ideographic=Yes) and some given names carry.
IDEOGRAPH_RANGES = (
    "\u3007"                  # 〇
    "\u3400-\u4dbf"           # Extension A
    "\u4e00-\u9fff"           # the unified ideographs
    "\uf900-\ufaff"           # compatibility ideographs
    "\U00020000-\U0002a6df"   # Extension B
    "\U0002a700-\U0002ebef"   # Extensions C, D, E, F
    "\U0002ebf0-\U0002ee5f"   # Extension I
    "\U0002f800-\U0002fa1f"   # compatibility ideographs supplement
    "\U00030000-\U000323af"   # Extensions G, H
)
# The dot between the parts of minority and transliterated names (阿依古丽·买买提). The ID card prints
# U+00B7 (GB 18030 A1A4); input methods give the others: 30FB and FF65 from Japanese layouts and old GB
# mappings, 2027 from Big5, 2022/2219/22C5 from symbol pickers, 0387 (NFC-equal to 00B7), 2E31, and the
# full-width full stop that people type for want of the dot. All are kept as the one the card prints.
NAME_DOT = "\u00b7"
NAME_DOT_VARIANTS = "\u00b7\u0387\u2022\u2027\u2219\u22c5\u2e31\u30fb\uff0e\uff65"
_TO_NAME_DOT = str.maketrans(dict.fromkeys(NAME_DOT_VARIANTS, NAME_DOT))
_IDEOGRAPH = f"[{IDEOGRAPH_RANGES}]"
# Ideographs, single dots between them (never first, last or doubled): 2 to 30 ideographs in all.
NAME_PATTERN = re.compile(rf"{_IDEOGRAPH}+(?:{NAME_DOT}{_IDEOGRAPH}+)*")
MIN_IDEOGRAPHS, MAX_IDEOGRAPHS = 2, 30


def normalize_name(value) -> str:
    """Return a typed name without spaces and with every middle-dot variant as U+00B7."""
    # Chinese names have no spaces; one typed between characters is a slip, never part of the name.
    return re.sub(r"\s+", "", str(value or "")).translate(_TO_NAME_DOT)


def name_problem(name: str) -> str | None:
    """Return why a normalised name is not a name in Han characters, or None when it is."""
    if not NAME_PATTERN.fullmatch(name):
        wrong = next((char for char in name if char != NAME_DOT and not re.fullmatch(_IDEOGRAPH, char)), None)
        shown = f"不能包含“{wrong}”，" if wrong else "“·”只能在两个汉字之间，"
        return f"{shown}应为2至30个汉字，少数民族姓名可用“·”分隔"
    ideographs = len(name) - name.count(NAME_DOT)
    if not MIN_IDEOGRAPHS <= ideographs <= MAX_IDEOGRAPHS:
        return f"应为2至30个汉字，当前为 {ideographs} 个"
    return None

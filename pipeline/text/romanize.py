"""Text front end: any supported script → one lower-case Roman "phonetic" string.

The lyrics/transcript encoder sees one alphabet for every language (DESIGN §5):

- Chinese (Han in a non-Japanese text): pypinyin, tone numbers, neutral tone 5, ü as v:
  "你好" → "ni3 hao3" (one word per syllable)
- Japanese (kana, and Han in a Japanese text): pykakasi, Hepburn: "東京タワー" → "toukyou tawaa"
- Korean (Hangul syllables): Revised Romanisation by jamo decomposition, no sound-change
  rules: "안녕하세요" → "annyeonghaseyo"
- Latin: lower case, diacritics removed ("Café" → "cafe"); digits and in-word apostrophes kept.

Punctuation and whitespace become word boundaries (a single space). Characters of any other
script (Cyrillic, emoji, ...) are kept as they are: the tokenizer maps each to its unknown
token and counts it, so nothing disappears silently.
"""
from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass

ROMAN_LETTERS = "abcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"
APOSTROPHE = "'"
ALPHABET = ROMAN_LETTERS + DIGITS + APOSTROPHE  # everything the front end can emit (plus spaces)

# Hangul syllable block arithmetic (Unicode ch. 3.12)
HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3
HANGUL_MEDIALS_TIMES_FINALS = 21 * 28
HANGUL_FINALS = 28
RR_INITIALS = ("g", "kk", "n", "d", "tt", "r", "m", "b", "pp", "s", "ss", "", "j", "jj", "ch", "k", "t", "p", "h")
RR_MEDIALS = ("a", "ae", "ya", "yae", "eo", "e", "yeo", "ye", "o", "wa", "wae", "oe", "yo", "u", "wo", "we",
              "wi", "yu", "eu", "ui", "i")
RR_FINALS = ("", "k", "k", "k", "n", "n", "n", "t", "l", "k", "m", "l", "l", "l", "p", "l", "m", "p", "p", "t",
             "t", "ng", "t", "t", "k", "t", "p", "t")

LATIN_SPECIAL = {"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ð": "d", "þ": "th", "ł": "l", "ı": "i"}
APOSTROPHES = "'’ʼ`"

# character classes
HAN, KANA, HANGUL, LATIN, DIGIT, APOS, SEP, OTHER = "han", "kana", "hangul", "latin", "digit", "apos", "sep", "other"


def is_han(ch: str) -> bool:
    cp = ord(ch)
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2FA1F
            or 0xF900 <= cp <= 0xFAFF or ch in "々〇")


def is_kana(ch: str) -> bool:
    cp = ord(ch)
    return 0x3041 <= cp <= 0x309F or 0x30A0 <= cp <= 0x30FF or 0x31F0 <= cp <= 0x31FF or 0xFF66 <= cp <= 0xFF9F


def hangul_syllable_to_roman(ch: str) -> str:
    idx = ord(ch) - HANGUL_FIRST
    initial, rest = divmod(idx, HANGUL_MEDIALS_TIMES_FINALS)
    medial, final = divmod(rest, HANGUL_FINALS)
    return RR_INITIALS[initial] + RR_MEDIALS[medial] + RR_FINALS[final]


def latin_base(ch: str) -> str | None:
    """'é' → 'e', 'ß' → 'ss'; None when the character is not a Latin letter."""
    low = ch.lower()
    if low in LATIN_SPECIAL:
        return LATIN_SPECIAL[low]
    base = "".join(c for c in unicodedata.normalize("NFKD", low) if not unicodedata.combining(c))
    return base if base and all(c in ROMAN_LETTERS for c in base) else None


def char_class(ch: str) -> str:
    if ch in APOSTROPHES:
        return APOS
    if is_han(ch):
        return HAN
    if is_kana(ch):
        return KANA
    if HANGUL_FIRST <= ord(ch) <= HANGUL_LAST:
        return HANGUL
    if ch.isdigit() and unicodedata.digit(ch, None) is not None:
        return DIGIT
    if latin_base(ch) is not None:
        return LATIN
    if ch.isspace() or unicodedata.category(ch)[0] in "PZC":  # punctuation, separators, controls
        return SEP
    return OTHER


@functools.lru_cache(maxsize=1)
def _kakasi():
    import pykakasi

    return pykakasi.kakasi()


def japanese_to_roman(text: str) -> list[str]:
    words = []
    for part in _kakasi().convert(text):
        roman = "".join(c for c in part["hepburn"].lower() if c in ROMAN_LETTERS)
        if roman:
            words.append(roman)
    return words


def chinese_to_pinyin(text: str) -> list[str]:
    from pypinyin import Style, lazy_pinyin

    return [s for s in lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True, v_to_u=False,
                                   errors=lambda chars: [""] * len(chars)) if s]


def detect_language(text: str) -> str | None:
    """Script-based guess: kana → ja, Hangul → ko, Han → zh, Latin → None (no conversion needed)."""
    classes = {char_class(c) for c in text}
    if KANA in classes:
        return "ja"
    if HANGUL in classes:
        return "ko"
    if HAN in classes:
        return "zh"
    return None


@dataclass(frozen=True)
class Romanized:
    text: str  # words separated by single spaces
    language: str | None  # the language used for Han characters


def _runs(text: str) -> list[tuple[str, str]]:
    runs: list[tuple[str, str]] = []
    for ch in text:
        cls = char_class(ch)
        if runs and runs[-1][0] == cls:
            runs[-1] = (cls, runs[-1][1] + ch)
        else:
            runs.append((cls, ch))
    return runs


def romanize(text: str, language: str | None = None) -> Romanized:
    """Convert text to the unified Roman alphabet (see the module doc)."""
    text = unicodedata.normalize("NFKC", text)
    lang = (language or "").split("-")[0].lower() or detect_language(text)
    if lang not in ("ja", "zh") and any(char_class(c) == HAN for c in text):
        lang = detect_language(text)  # Han in a text labelled e.g. "en": judge by script
    words: list[str] = []
    cur = ""  # current Latin/digit/Hangul word (scripts that are written with spaces)

    def flush():
        nonlocal cur
        stripped = cur.strip(APOSTROPHE)
        if stripped:
            words.append(stripped)
        cur = ""

    runs = _runs(text)
    i = 0
    while i < len(runs):
        cls, chunk = runs[i]
        if cls in (HAN, KANA) and (lang == "ja" or cls == KANA):
            # a Japanese run: Han and kana together, so readings use their context
            j = i
            while j + 1 < len(runs) and runs[j + 1][0] in (HAN, KANA):
                j += 1
                chunk += runs[j][1]
            flush()
            words += japanese_to_roman(chunk)
            i = j + 1
            continue
        if cls == HAN:
            flush()
            words += chinese_to_pinyin(chunk)
        elif cls == HANGUL:
            cur += "".join(hangul_syllable_to_roman(c) for c in chunk)
        elif cls == LATIN:
            cur += "".join(latin_base(c) or "" for c in chunk)
        elif cls == DIGIT:
            cur += "".join(str(unicodedata.digit(c)) for c in chunk)
        elif cls == APOS:
            cur += APOSTROPHE if cur else ""
        elif cls == OTHER:
            cur += chunk  # kept: the tokenizer counts it as unknown
        else:  # separator
            flush()
        i += 1
    flush()
    return Romanized(" ".join(words), lang)

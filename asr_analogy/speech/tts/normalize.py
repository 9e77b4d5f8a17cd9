"""Text normalization for English TTS: spell out what a voice would misread.

``normalize_for_tts("Press 1 or call 555-0123 at 9:30 a.m.")`` →
``"Press one or call five five five, zero one two three at nine thirty a m"``.

The rules are a table (``RULES``) of regexes, applied in order, each with a comment saying what it is for;
numbers are spelled by ``cardinal`` / ``ordinal`` / ``digits``. The manifest keeps the original transcript as
``text`` and records the spoken form as ``tts_text``; the recognizer's own normalizer reconciles "3" and
"three" at scoring time.

Text that cannot be spoken raises ``TextError``: nothing left after normalization (empty, or symbols only),
or characters an English voice cannot read (other scripts, emoji) — named in the message.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Callable

from asr_analogy.speech.tts.base import TextError

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (10**3, "thousand"))
_ORDINAL_WORDS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth", "nine": "ninth",
    "twelve": "twelfth",
}


def _below_thousand(n: int) -> str:
    words = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10] + (f" {_ONES[n % 10]}" if n % 10 else ""))
    elif n or not words:
        words.append(_ONES[n])
    return " ".join(words)


def cardinal(n: int) -> str:
    """0 → "zero", 1205 → "one thousand two hundred five", -3 → "minus three" (up to 10^15 - 1)."""
    if n < 0:
        return "minus " + cardinal(-n)
    if n >= 10**15:
        return digits(str(n))
    words = []
    for value, name in _SCALES:
        if n >= value:
            words += [_below_thousand(n // value), name]
            n %= value
    if n or not words:
        words.append(_below_thousand(n))
    return " ".join(words)


def ordinal(n: int) -> str:
    """1 → "first", 22 → "twenty second", 100 → "one hundredth"."""
    words = cardinal(n).split()
    last = words[-1]
    if last in _ORDINAL_WORDS:
        words[-1] = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def digits(s: str) -> str:
    """Read a digit string one digit at a time: "0123" → "zero one two three"."""
    return " ".join(_ONES[int(c)] for c in s if c.isdigit())


def year(n: int) -> str:
    """Read a year in pairs: 1984 → "nineteen eighty four", 1905 → "nineteen oh five", 2000 → "two thousand",
    2007 → "two thousand seven", 2024 → "twenty twenty four"."""
    hi, lo = divmod(n, 100)
    if n % 1000 < 10 and n >= 2000:
        return cardinal(n)
    if lo == 0:
        return f"{cardinal(hi)} hundred"
    return f"{cardinal(hi)} {'oh ' if lo < 10 else ''}{cardinal(lo)}"


def _decade(m: re.Match) -> str:
    n = int(m[1] + m[2] + "0")
    words = year(n).split()
    last = words[-1]
    words[-1] = (last[:-1] + "ies") if last.endswith("y") else last + "s"
    return " ".join(words)


def _int(s: str) -> int:
    return int(s.replace(",", ""))


def _money(m: re.Match) -> str:
    unit, sub = {"$": ("dollar", "cent"), "£": ("pound", "penny"), "€": ("euro", "cent")}[m["cur"]]
    whole, frac = _int(m["whole"]), int(m["frac"]) if m["frac"] else 0
    parts = []
    if whole or not frac:
        parts.append(f"{cardinal(whole)} {unit}{'' if whole == 1 else 's'}")
    if frac:
        sub_plural = "pence" if sub == "penny" else sub + "s"
        parts.append(f"{cardinal(frac)} {sub if frac == 1 else sub_plural}")
    return " and ".join(parts)


def _time(m: re.Match) -> str:
    hour, minute = int(m["h"]), int(m["m"])
    if minute == 0:
        return f"{cardinal(hour)} o'clock" if not m["ampm"] else cardinal(hour)
    return f"{cardinal(hour)} {'oh ' if minute < 10 else ''}{cardinal(minute)}"


def _decimal(m: re.Match) -> str:
    return f"{cardinal(_int(m['whole']))} point {digits(m['frac'])}"


def _fraction(m: re.Match) -> str:
    num, den = int(m["num"]), int(m["den"])
    if den == 2:
        return f"{cardinal(num)} {'half' if num == 1 else 'halves'}"
    if den == 4:
        return f"{cardinal(num)} {'quarter' if num == 1 else 'quarters'}"
    if 3 <= den <= 10:
        return f"{cardinal(num)} {ordinal(den)}{'' if num == 1 else 's'}"
    return f"{cardinal(num)} over {cardinal(den)}"


def _phone(m: re.Match) -> str:
    groups = [g for g in re.split(r"[-.\s()]+", m[0]) if g]
    return ", ".join(digits(g) for g in groups)


def _number(m: re.Match) -> str:
    s = m[0]
    if len(s) > 1 and s.startswith("0"):
        return digits(s)  # codes with a leading zero: "007"
    return cardinal(_int(s))


_MONTHS = {
    "Jan": "January", "Feb": "February", "Mar": "March", "Apr": "April", "Jun": "June", "Jul": "July",
    "Aug": "August", "Sep": "September", "Sept": "September", "Oct": "October", "Nov": "November",
    "Dec": "December",
}
_UNITS = {
    "kg": "kilograms", "km": "kilometers", "cm": "centimeters", "mm": "millimeters", "mph": "miles per hour",
    "lbs": "pounds", "lb": "pounds", "oz": "ounces", "ft": "feet", "GB": "gigabytes", "MB": "megabytes",
    "KB": "kilobytes", "kHz": "kilohertz", "Hz": "hertz", "ms": "milliseconds", "hrs": "hours", "hr": "hours",
    "mins": "minutes", "min": "minutes", "secs": "seconds", "sec": "seconds",
}


@dataclass(frozen=True)
class Rule:
    """One rewrite: every match of ``pattern`` is replaced by ``repl`` (a string or a function of the match)."""

    pattern: re.Pattern
    repl: str | Callable[[re.Match], str]
    comment: str


def _r(pattern: str, repl, comment: str, flags: int = 0) -> Rule:
    return Rule(re.compile(pattern, flags), repl, comment)


RULES: tuple[Rule, ...] = (
    # -- typography --------------------------------------------------------------------------------------
    _r(r"[\u2018\u2019\u02bc\u2032`]", "'", "curly/modifier apostrophes and primes become a plain apostrophe"),
    _r(r"[\u201c\u201d\u00ab\u00bb\u2033]", '"', "curly and angle quotes become plain double quotes"),
    _r(r"\s*[\u2014\u2015]\s*|\s+[\u2013-]\s+", ", ", "a dash between words is a pause: read as a comma"),
    _r(r"\u2026", "...", "an ellipsis character becomes three dots"),
    _r(r"\u2044", "/", "fraction slash (from ½ after NFKC) becomes a slash"),
    _r(r"\s*\u00d7\s*", " times ", "multiplication sign"),
    _r(r"[\u00ae\u00a9]", "", "registered and copyright signs are not read"),
    _r(r"(?<=\d)\u2013(?=\d)", " to ", "an en dash between numbers is a range: 3–5 is 'three to five'"),
    # -- addresses --------------------------------------------------------------------------------------
    _r(
        r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b",
        lambda m: m[0].replace("@", " at ").replace(".", " dot "),
        "e-mail addresses: john@example.com is 'john at example dot com'",
    ),
    _r(
        r"\b(?:https?://)?www\.[\w-]+(?:\.[\w-]+)+\b",
        lambda m: re.sub(r"^https?://", "", m[0]).replace(".", " dot "),
        "web addresses: www.example.com is 'www dot example dot com'",
    ),
    # -- abbreviations (before numbers, so 'No. 5' keeps its number) ---------------------------------------
    _r(r"\bMr\.", "Mister", "title"),
    _r(r"\bMrs\.", "Missus", "title"),
    _r(r"\bMs\.", "Miz", "title"),
    _r(r"\bDr\.(?=\s+[A-Z])", "Doctor", "title before a name; 'Elm Dr.' is handled next"),
    _r(r"\bDr\.", "Drive", "'Dr.' not before a name is a street type"),
    _r(r"\bSt\.(?=\s+[A-Z])", "Saint", "'St.' before a capitalised word is a saint ('St. Louis')"),
    _r(r"\bSt\.", "Street", "otherwise 'St.' is a street"),
    _r(r"\bJr\.", "Junior", "suffix"),
    _r(r"\bSr\.", "Senior", "suffix"),
    _r(r"\bAve\.", "Avenue", "street type"),
    _r(r"\bBlvd\.?", "Boulevard", "street type"),
    _r(r"\bApt\.", "Apartment", "address part"),
    _r(r"\bDept\.", "Department", "common in phone menus"),
    _r(r"\b[Ee]xt\.?(?=\s*\d)", "extension", "telephone extension before its number: 'ext. 204'"),
    _r(r"\b[Nn]o\.(?=\s*\d)", "number", "'No. 5' is 'number five' (only before a digit: 'no.' is a word)"),
    _r(r"\b[Ee]\.g\.", "for example", "Latin abbreviation"),
    _r(r"\b[Ii]\.e\.", "that is", "Latin abbreviation"),
    _r(r"\betc\.", "et cetera", "Latin abbreviation"),
    _r(r"\bvs\.?(?=\s)", "versus", "Latin abbreviation"),
    _r(r"\bapprox\.", "approximately", "abbreviation"),
    _r(
        r"\b(Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec)\.(?=\s)",
        lambda m: _MONTHS[m[1]],
        "abbreviated month with its period",
    ),
    # -- money, percentages, times (before plain numbers) --------------------------------------------------
    _r(
        r"(?P<cur>[$£€])\s?(?P<whole>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d{2}))?\b",
        _money,
        "currency: $9.99 is 'nine dollars and ninety nine cents', £1 is 'one pound'",
    ),
    _r(r"(\d+(?:\.\d+)?)\s?%", r"\1 percent", "percent sign after a number (the number is spelled later)"),
    _r(
        r"\b(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d)(?:\s?(?P<ampm>[AaPp])\.?[Mm]\b\.?)?(?!\d)",
        lambda m: _time(m) + (f" {m['ampm'].lower()} m" if m["ampm"] else ""),
        "clock times: 9:30 is 'nine thirty', 9:05 'nine oh five', 9:00 'nine o'clock', 9:00 pm 'nine p m'",
    ),
    _r(
        r"(?<=\d)\s?([AaPp])\.?[Mm]\b\.?",
        lambda m: f" {m[1].lower()} m",
        "a.m./p.m. after an hour: '7 pm' is 'seven p m'",
    ),
    # -- numbers ------------------------------------------------------------------------------------------
    _r(
        r"(?<![\d-])(?:\(\d{3}\)\s?|\d{3}[-.\s])?\d{3}[-.]\d{4}\b",
        _phone,
        "telephone numbers are read digit by digit, groups separated by pauses",
    ),
    _r(r"\b(\d+)(?:st|nd|rd|th)\b", lambda m: ordinal(int(m[1])), "ordinals: 1st, 22nd, 103rd"),
    _r(
        r"\b(1[1-9]|20)(\d)0'?s(?=\s|[.,;:!?]|$)",
        lambda m: _decade(m),
        "decades: 1990s is 'nineteen nineties', 2000s 'two thousands'",
    ),
    _r(
        r"\b([Ii]n|[Ss]ince|[Bb]y|[Ff]rom|of|year|[Uu]ntil) (1[1-9]\d\d|20\d\d)\b",
        lambda m: f"{m[1]} {year(int(m[2]))}",
        "a four-digit year after 'in', 'since', 'by', ... is read in pairs: 'in 1984' is 'nineteen eighty four'",
    ),
    _r(
        r"\b(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})\b",
        lambda m: " slash ".join(cardinal(int(g)) for g in m.groups()),
        "dates with slashes are read number by number (the day/month order is not guessed)",
    ),
    _r(r"\b(?P<num>\d+)/(?P<den>\d+)\b", _fraction, "fractions: 1/2 'one half', 3/4 'three quarters'"),
    _r(r"(?P<whole>\d{1,3}(?:,\d{3})+|\d+)\.(?P<frac>\d+)\b", _decimal, "decimals: 2.5 is 'two point five'"),
    _r(r"(?<![\w.])-(?=\d)", "minus ", "a minus sign before a number"),
    _r(
        r"\b(\d+)\s?(kg|km|cm|mm|mph|lbs?|oz|ft|GB|MB|KB|kHz|Hz|ms|hrs?|mins?|secs?)\b",
        lambda m: f"{m[1]} {_UNITS[m[2]]}",
        "units after a number (the number is spelled next)",
    ),
    _r(r"\b\d{1,3}(?:,\d{3})+\b", _number, "numbers with thousands separators: 1,250"),
    _r(r"\b\d{5,}\b", lambda m: digits(m[0]), "five or more digits are a code or account number: digit by digit"),
    _r(r"\b\d+\b", _number, "remaining whole numbers as cardinals; a leading zero means digits ('007')"),
    _r(
        r"(?<=[A-Za-z])\d+|\d+(?=[A-Za-z])",
        lambda m: f" {_number(m)} ",
        "digits glued to letters are split off and spelled: 'MP3' is 'MP three', '4G' 'four G'",
    ),
    # -- symbols ------------------------------------------------------------------------------------------
    _r(r"\s*&\s*", " and ", "ampersand"),
    _r(r"\s*\+\s*", " plus ", "plus sign"),
    _r(r"\s*=\s*", " equals ", "equals sign"),
    _r(r"\s*@\s*", " at ", "a lone at sign"),
    _r(r"\s*#\s*", " pound ", "hash: on a telephone keypad it is the pound key"),
    _r(r"\s*\*\s*", " star ", "asterisk: on a telephone keypad it is the star key"),
    _r(r"\s*%\s*", " percent ", "a percent sign not after a number"),
    _r(r"\s*°\s*", " degrees ", "degree sign"),
    _r(r"\s*/\s*", " slash ", "slash between words: 'and/or'"),
    _r(r"[\[\]{}<>|\\^~_]", " ", "brackets and other marks nobody reads aloud are dropped"),
    _r(r"[()]", ", ", "parentheses become pauses"),
    # -- tidy ---------------------------------------------------------------------------------------------
    _r(r"\s+([,.;:!?])", r"\1", "no space before punctuation"),
    _r(r"([,;:])(?:\s*[,;:])+", r"\1", "collapse runs of pause punctuation left by earlier rules"),
    _r(r"^[\s,;:.]+", "", "no leading pauses"),
    _r(r"[\s,;:]+$", "", "no trailing pauses (a final . ! ? stays)"),
    _r(r"\s+", " ", "single spaces"),
)

# What an English voice can read once the rules ran: ASCII letters, apostrophes and sentence punctuation.
_SPEAKABLE = re.compile(r"[A-Za-z0-9\s.,;:!?'\"-]")


def _fold_accents(text: str) -> str:
    """café → cafe, naïve → naive: drop combining marks after NFKD (other scripts are left alone)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalize_for_tts(text: str, *, check: bool = True) -> str:
    """Spell out numbers, symbols and abbreviations in English ``text`` for a TTS voice (see ``RULES``).

    With ``check`` (default), raises ``TextError`` for text with nothing to say (empty or symbols only) or
    with characters left that an English voice cannot read, naming them.
    """
    if not isinstance(text, str):
        raise TextError(f"text must be a string, got {type(text).__name__}", reason="empty_text")
    if check and not any(ch.isalnum() for ch in text):  # before the symbol rules turn "@@@" into "at at at"
        check_speakable(text)
    out = _fold_accents(unicodedata.normalize("NFKC", text))
    for rule in RULES:
        out = rule.pattern.sub(rule.repl, out)
    out = out.strip()
    if check:
        check_speakable(out, original=text)
    return out


def check_speakable(text: str, *, original: str | None = None) -> None:
    """Raise ``TextError`` when ``text`` has no letter or digit, or holds characters outside ``_SPEAKABLE``."""
    shown = original if original is not None else text
    if not any(ch.isalnum() for ch in text):
        if not shown.strip():
            raise TextError(f"nothing to say: empty text: {shown!r}", reason="empty_text")
        raise TextError(f"nothing to say: no words (symbols only): {shown!r}", reason="no_words")
    bad = sorted({ch for ch in text if not _SPEAKABLE.match(ch)})
    if bad:
        names = ", ".join(f"{ch!r} ({unicodedata.name(ch, 'U+%04X' % ord(ch))})" for ch in bad)
        raise TextError(
            f"unsupported characters for an English voice: {names} in {shown!r}", reason="unsupported_characters"
        )

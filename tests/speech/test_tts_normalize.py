"""Text normalization for TTS: tables of input -> expected spoken form, and the errors for unspeakable text."""

import pytest

from asr_analogy.speech.tts import TextError, normalize_for_tts
from asr_analogy.speech.tts.normalize import RULES, cardinal, digits, ordinal, year

CASES = [
    # numbers
    ("Press 1 for sales.", "Press one for sales."),
    ("Press 0 for the operator", "Press zero for the operator"),
    ("1,250 people", "one thousand two hundred fifty people"),
    ("Account 123456", "Account one two three four five six"),
    ("Agent 007", "Agent zero zero seven"),
    ("Pi is 3.14", "Pi is three point one four"),
    ("-5 degrees", "minus five degrees"),
    ("The 21st and 3rd", "The twenty first and third"),
    ("MP3 and 4G", "MP three and four G"),
    ("3/4 cup, 1/2 hour, 5/16", "three quarters cup, one half hour, five over sixteen"),
    ("12/25/2024", "twelve slash twenty five slash two thousand twenty four"),
    ("3\u20135 days", "three to five days"),
    ("2 kg", "two kilograms"),
    # money, percent, time, years
    ("It costs $9.99, or \u00a31.", "It costs nine dollars and ninety nine cents, or one pound."),
    ("$1,000,000", "one million dollars"),
    ("$0.50", "fifty cents"),
    ("50% off", "fifty percent off"),
    ("at 9:30 a.m.", "at nine thirty a m"),
    ("at 9:05", "at nine oh five"),
    ("It's 9:00", "It's nine o'clock"),
    ("at 7 pm", "at seven p m"),
    ("In 1984 and since 2007", "In nineteen eighty four and since two thousand seven"),
    ("the 1990s and the 1800's", "the nineteen nineties and the eighteen hundreds"),
    # telephone numbers and keypad symbols
    ("call 555-0123", "call five five five, zero one two three"),
    ("Call (800) 555-1234 ext. 204", "Call eight zero zero, five five five, one two three four extension two hundred four"),
    ("Press # or *", "Press pound or star"),
    # abbreviations
    ("Meet Dr. Smith on Elm Dr.", "Meet Doctor Smith on Elm Drive"),
    ("St. Louis on Main St.", "Saint Louis on Main Street"),
    ("Mr. and Mrs. Jones", "Mister and Missus Jones"),
    ("No. 5 vs. No. 6", "number five versus number six"),
    ("e.g. this, i.e. that", "for example this, that is that"),
    # symbols and typography
    ("Tom & Jerry", "Tom and Jerry"),
    ("mail john@example.com", "mail john at example dot com"),
    ("visit www.example.com", "visit www dot example dot com"),
    ("It\u2019s \u201cquoted\u201d", 'It\'s "quoted"'),
    ("\u2014 hello (world) \u2014", "hello, world"),
    ("\u00bd price", "one half price"),
    ("caf\u00e9 na\u00efve", "cafe naive"),
    ("I am here", "I am here"),
]


@pytest.mark.parametrize("text, expected", CASES, ids=[c[0] for c in CASES])
def test_normalize_table(text, expected):
    assert normalize_for_tts(text) == expected


@pytest.mark.parametrize(
    "fn, n, expected",
    [
        (cardinal, 0, "zero"),
        (cardinal, 13, "thirteen"),
        (cardinal, 40, "forty"),
        (cardinal, 101, "one hundred one"),
        (cardinal, 1205, "one thousand two hundred five"),
        (cardinal, 2_000_019, "two million nineteen"),
        (cardinal, -3, "minus three"),
        (ordinal, 1, "first"),
        (ordinal, 12, "twelfth"),
        (ordinal, 20, "twentieth"),
        (ordinal, 22, "twenty second"),
        (ordinal, 100, "one hundredth"),
        (year, 1905, "nineteen oh five"),
        (year, 1900, "nineteen hundred"),
        (year, 2000, "two thousand"),
        (year, 2024, "twenty twenty four"),
    ],
)
def test_number_words(fn, n, expected):
    assert fn(n) == expected


def test_digits_reads_each_digit():
    assert digits("0123") == "zero one two three"


@pytest.mark.parametrize(
    "text, reason, named",
    [
        ("", "empty_text", "empty text"),
        ("   ", "empty_text", "empty text"),
        ("!!! ???", "no_words", "symbols only"),
        ("@@@", "no_words", "symbols only"),  # checked before '@' would become 'at'
        ("\u65e5\u672c hello", "unsupported_characters", "CJK UNIFIED IDEOGRAPH-65E5"),
        ("hello \U0001f642", "unsupported_characters", "SLIGHTLY SMILING FACE"),
        ("\u20ac", "no_words", "symbols only"),
    ],
)
def test_unspeakable_text_raises_with_reason(text, reason, named):
    with pytest.raises(TextError) as err:
        normalize_for_tts(text)
    assert err.value.reason == reason
    assert named in str(err.value)


def test_every_rule_has_a_comment():
    assert len(RULES) > 40
    for rule in RULES:
        assert rule.comment.strip(), rule.pattern.pattern

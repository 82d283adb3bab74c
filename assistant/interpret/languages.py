"""Language codes, names, and how each script's text is cut into words and joined again.

Chinese and Japanese are written without spaces: their "words" for caption agreement and
phrase splitting are single characters (each one a syllable), and they are joined with
nothing between them. Every other language is cut at spaces.
"""

from __future__ import annotations

import re

# Languages written without spaces between words.
_UNSPACED = {"zh", "ja", "yue", "th", "lo", "my", "bo"}
# One CJK ideograph, kana syllable or full-width punctuation mark is one unit.
_CJK_CHAR = re.compile(
    r"[\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]"
)
_UNIT = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff][\u3000-\u303f\uff00-\uffef]*"
    r"|[^\s\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+"
)
# Sentence and clause ends in both scripts.
SENTENCE_ENDS = ".?!。？！"
CLAUSE_ENDS = ",;:，；：、"


def known_language(code: str) -> bool:
    """A code Whisper knows (the interpreter's languages are Whisper's)."""
    from assistant.asr import language_codes

    return code in language_codes()


_NAMES = {
    "en": "English", "zh": "Chinese", "fr": "French", "de": "German", "es": "Spanish",
    "it": "Italian", "pt": "Portuguese", "nl": "Dutch", "ru": "Russian", "uk": "Ukrainian",
    "pl": "Polish", "cs": "Czech", "sv": "Swedish", "da": "Danish", "fi": "Finnish",
    "no": "Norwegian", "tr": "Turkish", "el": "Greek", "ar": "Arabic", "he": "Hebrew",
    "hi": "Hindi", "ja": "Japanese", "ko": "Korean", "vi": "Vietnamese", "th": "Thai",
    "id": "Indonesian", "yue": "Cantonese",
}  # fmt: skip


def language_name(code: str) -> str:
    """English name for prompts and the UI: "fr" -> "French"; another code as it is."""
    return _NAMES.get(code, code)


def unspaced(code: str) -> bool:
    return code in _UNSPACED


def has_cjk(text: str) -> bool:
    return bool(_CJK_CHAR.search(text))


def units(text: str) -> list[str]:
    """The text's words: space-separated words, and each CJK character on its own (with
    the punctuation that follows it), so mixed text such as "我用 Python 写" works."""
    return _UNIT.findall(text)


def join_units(parts: list[str]) -> str:
    """The inverse of ``units``: a space between two units unless either is CJK."""
    out = ""
    for part in parts:
        if out and not (has_cjk(out[-1]) or has_cjk(part[0])):
            out += " "
        out += part
    return out


# A sentence ends at . ? ! (then a space) or at a full-width mark (no space follows those).
_SENTENCE_BREAK = re.compile(r"(?<=[.?!…])\s+(?=\S)|(?<=[。？！])\s*(?=\S)")


def sentences(text: str) -> list[str]:
    """The text's sentences, in order: a small translation model given two sentences at
    once may translate only one of them."""
    return [part.strip() for part in _SENTENCE_BREAK.split(text.strip()) if part.strip()]


def joiner(code: str) -> str:
    """What goes between two sentences written in ``code``."""
    return "" if unspaced(code) else " "

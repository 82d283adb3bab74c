"""Whether a transcript reads as a finished turn, to end the turn on a shorter silence.

A fixed end-of-turn silence is a compromise: long enough not to cut off a user who
pauses mid-thought, so too long after a plain question. Whisper punctuates from prosody
as well as words, so a transcript that ends in a full stop, question or exclamation mark
is usually a finished sentence, while one that trails off ("I'd like to...", "and")
is not. This is the cheap first tier of semantic turn detection; a barge-in still
catches the rare early call, since the user's next words start a new turn.
"""

from __future__ import annotations

import re

_FINISHED = re.compile(r"[.?!。？！]['\"”’)\]]*$")
_TRAILING_OFF = re.compile(r"(\.\.\.|…)['\"”’)\]]*$")


def reads_finished(text: str) -> bool:
    text = text.strip()
    return bool(_FINISHED.search(text)) and not _TRAILING_OFF.search(text)

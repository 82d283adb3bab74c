"""Where speech over the assistant's reply really began.

Voice activity is judged on WebRTC AEC3's output, which leaves the least echo, but AEC3
also suppresses the near end hardest while the far end is loud and it is still learning
the room: a question spoken just as a reply starts shows there as a short burst, then
nothing for half a second or more, and the endpointer confirms speech only once AEC3 lets
the voice through again. Its pre-roll then starts after the question's first words.

The second canceller's output (Speex, what the recogniser hears) keeps the user's voice
in double talk but keeps some of the echo too, so voice activity on it alone cannot tell
the user from the reply. Together they can: looking back from a late start, the user
began where the words channel's run of speech that reaches the late start began after a
silence, provided AEC3 let some of that run through before the start. Where AEC3 found
the start at once, or the run reaches back into the reply's echo with no silence in
view, nothing is added: the echo before a question is not taken for its start.
"""

from __future__ import annotations

import collections

import numpy as np

from assistant.config import VadConfig
from assistant.pipeline.vad_windows import VadModel
from assistant.vad import SAMPLE_RATE, WINDOW, still_speech

_LOOK_BACK_S = 1.5  # before the utterance's first window: longer than AEC3 holds a voice back
_GAP_WINDOWS = 3  # a pause this long (~100 ms) on the words channel ends a run of speech
_LEAD_WINDOWS = 2  # kept before the run: the first consonant begins before Silero hears it


class SpeechOnset:
    def __init__(self, vad: VadModel, config: VadConfig) -> None:
        """``vad``: a Silero VAD of its own for the words channel (its state is reset
        before each look back), not the endpointer's."""
        self._vad = vad
        self._config = config
        pre_roll = max(1, round(config.pre_roll_ms * SAMPLE_RATE / 1000 / WINDOW))
        keep = pre_roll + round(_LOOK_BACK_S * SAMPLE_RATE / WINDOW)
        # heard samples and the endpointer's speech probability of each recent window
        self._recent: collections.deque[tuple[np.ndarray, float]] = collections.deque(maxlen=keep)

    def observe(self, heard: np.ndarray, probability: float) -> None:
        """Each window as the endpointer sees it: what is transcribed, and AEC3's
        speech probability."""
        self._recent.append((heard, probability))

    def before(self, utterance_windows: int) -> np.ndarray:
        """The user's speech that came before the current utterance's first window
        (``utterance_windows`` long, the window just observed being its last), or none."""
        recent = list(self._recent)
        first = len(recent) - utterance_windows  # the utterance's first window
        if first <= 0:
            return np.zeros(0, np.float32)
        reset = getattr(self._vad, "reset", None)
        if reset is not None:
            reset()
        voiced_floor = still_speech(self._config.threshold)
        words_voiced = [self._vad(heard) >= voiced_floor for heard, _ in recent]
        # the run of speech on the words channel that reaches the utterance
        start, gap = len(recent) - 1, 0
        for i in range(len(recent) - 1, -1, -1):
            gap = 0 if words_voiced[i] else gap + 1
            if gap > _GAP_WINDOWS:
                break
            if words_voiced[i]:
                start = i
        if gap <= _GAP_WINDOWS:  # no silence before it in view: it reaches back into echo
            return np.zeros(0, np.float32)
        # Some of the run came through AEC3 before the utterance's first window: the
        # user's, from where the run began.
        if not any(recent[i][1] >= voiced_floor for i in range(start, first)):
            return np.zeros(0, np.float32)
        return np.concatenate([heard for heard, _ in recent[max(0, start - _LEAD_WINDOWS) : first]])

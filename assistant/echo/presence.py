"""Whether the microphone hears the speaker at all: loudspeakers, or headphones.

A canceller that is still learning the room suppresses the near end wherever the far end
is loud, and with headphones there is no echo to learn: the user's first words over a
reply would be lost for nothing. So the level the microphone picks up while the speaker
plays is watched (the median, over the last few seconds of playback, of microphone level
minus speaker level): far below the speaker, nothing comes back, and the microphone is
passed on as it is, the reply interruptible at once. Until enough playback has been
heard, and whenever the median rises again (headphones taken off), it counts as present.
"""

from __future__ import annotations

import collections
import statistics

import numpy as np

_FAR_ACTIVE_DB = -40.0  # the speaker is playing something in this frame
_ABSENT_BELOW_DB = -40.0  # the microphone this far below the speaker hears no echo
_WINDOW = 300  # playing frames (10 ms) the median is taken over: the last 3 s
_DECIDE_AFTER = 50  # half a second of playback before "absent" is believed
_HEARD_DB = -55.0  # the microphone picked something up in this frame


def frame_db(samples: np.ndarray) -> float:
    return 10 * float(np.log10(np.mean(samples.astype(np.float64) ** 2) + 1e-12))


class EchoPresence:
    def __init__(self) -> None:
        self._ratios: collections.deque[float] = collections.deque(maxlen=_WINDOW)
        # the same, over frames where the microphone heard something: before the echo
        # arrives (the room's delay), a silent frame says nothing of how loud it is
        self._heard: collections.deque[float] = collections.deque(maxlen=_WINDOW)

    def observe(self, near: np.ndarray, far: np.ndarray) -> None:
        """One frame of the microphone and of what the speaker played meanwhile."""
        far_db = frame_db(far)
        if far_db >= _FAR_ACTIVE_DB:
            near_db = frame_db(near)
            self._ratios.append(near_db - far_db)
            if near_db > _HEARD_DB:
                self._heard.append(near_db - far_db)

    @property
    def echo_return_db(self) -> float | None:
        """How loud the echo is against what was played (the median over the last few
        seconds of playback, in dB), or None until enough of it has been heard."""
        heard = list(self._heard)
        return statistics.median(heard) if len(heard) >= _DECIDE_AFTER else None

    @property
    def present(self) -> bool:
        ratios = list(self._ratios)
        if len(ratios) < _DECIDE_AFTER:
            return True
        return statistics.median(ratios) > _ABSENT_BELOW_DB

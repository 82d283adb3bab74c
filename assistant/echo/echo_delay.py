"""How long after a sound is played its echo reaches the microphone, from levels alone.

The echo of each 10 ms frame of the reply arrives some frames later (the room's path
plus whatever the device timings leave uncounted), then dies away with the room's
reverberation. Knowing that delay tells which frames of the reply the microphone can be
hearing now, so a gap in the reply is a gap in its echo too: a person talking there
stands out from it (``DoubleTalk``), where a bound over every frame the path may hold
would be as loud as the reply's last syllables. The delay is the lag at which the
microphone's frame energies follow the speaker's best (Pearson's correlation over the
last few seconds), counted only where the speaker played something, so that a silence
or a ducked stretch of the reply says nothing; when nothing follows the speaker well
enough (headphones, a voice louder than the echo throughout), there is no estimate; nor
when it follows best what was played after it (the two streams' timings disagree: no
delay can be trusted then).
"""

from __future__ import annotations

import collections

import numpy as np

_HISTORY = 300  # frames the estimate is made over: the last 3 s
_EVERY = 25  # frames between estimates: a quarter of a second
_PLAYING_DB = -40.0  # a frame where the speaker played something (not silence, not ducked)
_MIN_PLAYING = 50  # such frames needed at a lag for it to be judged: half a second
_MIN_CORRELATION = 0.3  # weaker than this, the microphone is not following the speaker
_AHEAD = 10  # frames the microphone is checked for running ahead of the speaker


class EchoDelay:
    def __init__(self, max_frames: int) -> None:
        self._max = max_frames
        self._far: collections.deque[float] = collections.deque(maxlen=_HISTORY)
        self._near: collections.deque[float] = collections.deque(maxlen=_HISTORY)
        self._count = 0
        self.frames: int | None = None  # the latest estimate, in 10 ms frames

    def observe(self, far_db: float, near_db: float) -> None:
        """Levels (dB) of one frame of what played and of what the microphone heard."""
        self._far.append(far_db)
        self._near.append(near_db)
        self._count += 1
        if self._count % _EVERY == 0:
            self.frames = self._estimate()

    def _estimate(self) -> int | None:
        far_db = np.array(self._far)
        played = np.power(10.0, far_db / 10)
        heard = np.power(10.0, np.array(self._near) / 10)
        n = far_db.size
        best, best_r = None, _MIN_CORRELATION
        for lag in range(-_AHEAD, min(self._max, n - _MIN_PLAYING) + 1):
            # what was played at frame i, against what was heard at frame i + lag
            far_at = slice(max(0, -lag), n - max(0, lag))
            near_at = slice(max(0, lag), n - max(0, -lag))
            playing = far_db[far_at] >= _PLAYING_DB
            if playing.sum() < _MIN_PLAYING:
                continue
            x, y = played[far_at][playing], heard[near_at][playing]
            if x.std() == 0 or y.std() == 0:
                continue
            r = float(np.corrcoef(x, y)[0, 1])
            if r > best_r:
                best, best_r = lag, r
        return best if best is None or best >= 0 else None

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
        self.max_frames = max_frames
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
        n = far_db.size
        if np.count_nonzero(far_db >= _PLAYING_DB) < _MIN_PLAYING:
            return None  # too little played to be followed
        lags = np.arange(-_AHEAD, min(self.max_frames, n - _MIN_PLAYING) + 1)
        # row per lag: what was played at frame i against what was heard at i + lag
        heard_at = np.arange(n)[None, :] + lags[:, None]
        pairs = (heard_at >= 0) & (heard_at < n) & (far_db >= _PLAYING_DB)[None, :]
        x = np.where(pairs, np.power(10.0, far_db / 10)[None, :], 0.0)
        near = np.power(10.0, np.array(self._near) / 10)
        y = np.where(pairs, near[np.clip(heard_at, 0, n - 1)], 0.0)
        count = pairs.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            mx, my = x.sum(axis=1) / count, y.sum(axis=1) / count
            cov = (x * y).sum(axis=1) / count - mx * my
            vx = (x * x).sum(axis=1) / count - mx * mx
            vy = (y * y).sum(axis=1) / count - my * my
            r = np.where((count >= _MIN_PLAYING) & (vx > 0) & (vy > 0), cov / np.sqrt(vx * vy), -1)
        best = int(np.argmax(r))
        if r[best] <= _MIN_CORRELATION or lags[best] < 0:
            return None
        return int(lags[best])

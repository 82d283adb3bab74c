"""Moments the microphone hears more than the speaker could have put there: someone talking.

The echo a microphone picks up is at most about as loud as what the speaker played in
the moments before (the room's delay and reverberation), times the room's echo return,
which ``EchoPresence`` measures. A frame well above that cannot be the echo, whatever a
canceller made of it: a person is talking over the reply. Once the room's delay is known
(``EchoDelay``), "the moments before" are the frames played about that long ago, and
older ones fainter as the room's reverberation dies away: a person talking as loud as
the echo stands out in the reply's gaps, even in its first seconds, where the
canceller has not learnt the room. Until then, and where the delay cannot be told, any
frame played within the whole path may be echoing. ``WordsFirst`` asks for such
frames under a probe's words before it believes them: Whisper finds words in a residue
of echo (more so while the canceller is still learning the room, or after the stream's
timing moved), but the residue is never louder than the echo it came from.
"""

from __future__ import annotations

import collections
import math

import numpy as np

from assistant.echo.echo_delay import EchoDelay
from assistant.echo.presence import EchoPresence, frame_db

FRAME_S = 0.01  # what each observed frame holds: the cancellers' 10 ms
_OVER_DB = 10.0  # this far above the loudest echo the last moments could give
_PATH_FRAMES = 40  # 10 ms frames: the room's delay and reverberation, and device slack
_QUIET_DB = -55.0  # quieter frames are no one's voice
_NOTHING_PLAYED_DB = -80.0  # below even a ducked reply's quietest sounds: silence
# Around the estimated delay, frames that may still be echoing as loud as they played:
# the estimate moves by a few frames between estimates; a shorter path is covered longer.
_EARLIER_FRAMES = 4
_LATER_FRAMES = 8
# Older frames echo fainter by this much per frame: reverberation dying away by 60 dB in
# 0.6 s, longer than a living room's or an office's.
_DECAY_DB_PER_FRAME = 1.0
_KEPT = 1000  # frames over the echo remembered: 10 s, longer than any check
_SILENT_KEPT = 3000  # frames with the speaker silent remembered: 30 s, past any segment


class DoubleTalk:
    def __init__(self, presence: EchoPresence) -> None:
        self._presence = presence
        self._far: collections.deque[float] = collections.deque(maxlen=_PATH_FRAMES)
        self._delay = EchoDelay(max_frames=_PATH_FRAMES - 1 - _EARLIER_FRAMES)
        self._over: collections.deque[float] = collections.deque(maxlen=_KEPT)
        self._silent: collections.deque[float] = collections.deque(maxlen=_SILENT_KEPT)
        # (capture time, dB over the loudest echo the path allows) of the latest frames
        self._excess: collections.deque[tuple[float, float]] = collections.deque(
            maxlen=_PATH_FRAMES
        )

    def observe(self, near: np.ndarray, far: np.ndarray, at: float) -> None:
        """One frame of the microphone, captured from ``at``, and of what played meanwhile."""
        near_db = frame_db(near)
        self._far.append(frame_db(far))
        self._delay.observe(self._far[-1], near_db)
        loudest = max(self._far)
        if loudest <= _NOTHING_PLAYED_DB:
            # Nothing played in the last moments, so nothing to talk over; and what the
            # microphone hears then may still be the reply, later than the path allows
            # (a device's buffer, a stalled stream), above a silent far end.
            self._silent.append(at)
            return
        echo_return = self._presence.echo_return_db
        if echo_return is None:  # the room is not known yet: no frame proves anything
            return
        if near_db > _QUIET_DB:
            self._excess.append((at, near_db - (loudest + echo_return)))
            if near_db - (self._echo_bound() + echo_return) > _OVER_DB:
                self._over.append(at)

    def _echo_bound(self) -> float:
        """The loudest frame (dB, as played) whose echo the microphone may be hearing now."""
        far = list(self._far)
        lag = self._delay.frames
        if lag is None:
            return max(far)
        arriving = len(far) - 1 - lag  # the frame whose echo arrives now
        first = max(0, arriving - _EARLIER_FRAMES)
        near = far[first : max(0, arriving + _LATER_FRAMES + 1)]
        older = [db - _DECAY_DB_PER_FRAME * (first - k) for k, db in enumerate(far[:first])]
        return max(near + older, default=-math.inf)

    @property
    def delay_frames(self) -> int | None:
        """The echo's delay in 10 ms frames, as learnt; None while not known."""
        return self._delay.frames

    def timing_moved(self) -> None:
        """The microphone's times moved (its stream restarted, or its anchor was found
        late): the echo's delay is learnt afresh, any frame played within the whole path
        counting as echoing until then. A delay that suddenly reads shorter than the one
        learnt would otherwise put echo outside the frames allowed for."""
        self._delay = EchoDelay(max_frames=self._delay.max_frames)

    def frames_over_echo(self, start: float, end: float) -> int:
        """How many frames captured between ``start`` and ``end`` were louder than any echo."""
        return len(self._between(start, end))

    def frames_speaker_silent(self, start: float, end: float) -> int:
        """How many frames captured between ``start`` and ``end`` no echo can be in:
        the speaker had played nothing for the whole path before them."""
        return sum(start <= at <= end for at in list(self._silent))

    def excess_db(self, start: float, end: float) -> float | None:
        """How far the loudest frame captured between ``start`` and ``end`` (within the
        last 0.4 s) was over the loudest echo the path allows, in dB; None when no
        frame there can be told from the echo (silent, nothing playing, room unknown)."""
        excess = [db for at, db in list(self._excess) if start <= at <= end]
        return max(excess) if excess else None

    def first_over_echo(self, start: float, end: float, at_least: int) -> float | None:
        """When the first frame louder than any echo between ``start`` and ``end`` was
        captured, if there were ``at_least`` such frames there; else None."""
        over = self._between(start, end)
        return over[0] if len(over) >= max(1, at_least) else None

    def _between(self, start: float, end: float) -> list[float]:
        return [at for at in list(self._over) if start <= at <= end]

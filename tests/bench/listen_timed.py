"""``voice-assistant listen`` that also logs each turn's own marks (for ``--vv-timed``).

The same command, plus one event subscriber: for every answered turn it appends a JSON
line to $BENCH_TIMINGS with the monotonic times of the end of speech (the last voiced VAD
window) and of the first reply sample at the DAC (PortAudio's estimate), and the stage
timings. Both processes share CLOCK_MONOTONIC with the vv-meter, so its rows line up.
"""

from __future__ import annotations

import json
import os
import sys
import time

from assistant import cli
from assistant.commands import listen
from assistant.events import AudioStarted, Event, TurnTimings


class TimedPrinter(listen.Printer):
    def __init__(self, ready_file) -> None:
        super().__init__(ready_file)
        self.first_sample_at: dict[int, float] = {}
        self.output_buffer_ms: dict[int, float] = {}  # the sample's wait for the DAC

    def __call__(self, event: Event) -> None:
        super().__call__(event)
        if isinstance(event, AudioStarted):  # sent from PortAudio's callback
            self.first_sample_at[event.turn] = event.at
            self.output_buffer_ms[event.turn] = 1000 * (event.at - time.monotonic())
        elif isinstance(event, TurnTimings) and event.timings_ms.get("voice_to_voice"):
            at = self.first_sample_at.get(event.turn)
            if at is None:
                return
            line = {
                "turn": event.turn,
                "speech_end_at": at - event.timings_ms["voice_to_voice"] / 1000,
                "first_sample_at": at,
                "output_buffer_ms": self.output_buffer_ms.get(event.turn),
                **event.timings_ms,
            }
            with open(os.environ["BENCH_TIMINGS"], "a") as out:
                out.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    listen.Printer = TimedPrinter  # type: ignore[misc]
    sys.exit(cli.main(["listen", *sys.argv[1:]]))

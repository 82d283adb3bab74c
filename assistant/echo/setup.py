"""How a live mode deals with hearing itself: which canceller, which barge-in policy.

A sink that plays on a real speaker has a ``reference`` slot; it is given a
``PlaybackReference`` so the canceller (and the half-duplex gate) know what was played.
A file or null sink plays into no room, so nothing there can echo.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from assistant.audio.playback_reference import PlaybackReference
from assistant.config import AssistantConfig
from assistant.echo.backends import create_cancellers, describe
from assistant.echo.base import EchoCanceller
from assistant.echo.double_talk import DoubleTalk
from assistant.echo.presence import EchoPresence
from assistant.pipeline.barge_in import BargeInPolicy, HalfDuplex, Immediate, WordsFirst

log = logging.getLogger(__name__)


@dataclass
class EchoSetup:
    policy: BargeInPolicy
    description: str  # for doctor, the terminal and the window
    canceller: EchoCanceller | None = None
    reference: PlaybackReference | None = None
    presence: EchoPresence | None = None  # shared by the canceller stage and the policy
    words: EchoCanceller | None = None  # a second canceller, for what is transcribed
    double_talk: DoubleTalk | None = None  # fed by the canceller stage, asked by the policy

    @property
    def cancelling(self) -> bool:
        return self.canceller is not None


def echo_setup(config: AssistantConfig, sink, source=None) -> EchoSetup:
    """``source`` that ``hears_own_output`` (the system-audio monitor) records what the
    app plays mixed in digitally, where the device's estimate of when a sample plays can
    come after the sample is recorded: no canceller can subtract an echo that arrives
    before its reference, so such an input is half duplex whatever ``audio.echo`` says."""
    if not hasattr(sink, "reference"):
        return EchoSetup(Immediate(), "no speaker in a room (output to a file)")
    setting = config.audio.echo
    loopback = getattr(source, "hears_own_output", False)
    if setting == "off" and not loopback:
        return EchoSetup(Immediate(), "echo handling off (headphones)")
    reference = PlaybackReference(config.audio.sample_rate)
    sink.reference = reference
    if loopback:
        return EchoSetup(
            HalfDuplex(reference),
            "not listening to the computer's sound while it speaks",
            None,
            reference,
        )
    if setting == "cancel":
        canceller, words, why = create_cancellers(config.audio.echo_canceller)
        if canceller is not None:
            presence = EchoPresence()
            double_talk = DoubleTalk(presence)
            policy = WordsFirst(
                reference, getattr(sink, "duck", None), presence, double_talk=double_talk
            )
            return EchoSetup(
                policy,
                f"echo cancellation on ({describe(canceller, words)})",
                canceller,
                reference,
                presence,
                words,
                double_talk,
            )
        log.warning("%s; not listening while the assistant speaks (half duplex)", why)
    return EchoSetup(
        HalfDuplex(reference), "half duplex: not listening while it speaks", None, reference
    )

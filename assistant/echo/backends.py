"""The echo cancellers there are, and the one that can run here."""

from __future__ import annotations

from assistant.echo import speex, webrtc
from assistant.echo.base import EchoCanceller

# name: (its module, whose available() says why it cannot run here; the canceller)
BACKENDS = {
    "speex": (speex, speex.SpeexCanceller),
    "webrtc": (webrtc, webrtc.WebRtcCanceller),
}


def create_cancellers(choice: str) -> tuple[EchoCanceller | None, EchoCanceller | None, str]:
    """(canceller, canceller for words or None, why there is none).

    "auto" pairs them where both run: WebRTC AEC3 leaves the least echo, so voice activity
    is looked for in its output (the assistant never takes its own voice for the user);
    Speex keeps the user's words when both talk, so its output is what is transcribed.
    Where only one runs, it does both; "webrtc" or "speex" asks for one alone.
    """
    names = ("webrtc", "speex") if choice == "auto" else (choice,)
    made, reasons = [], []
    for name in names:
        module, canceller = BACKENDS[name]
        why = module.available()
        if why is None:
            made.append(canceller())
        else:
            reasons.append(why)
    if not made:
        return None, None, "; ".join(reasons)
    return made[0], (made[1] if len(made) > 1 else None), ""


def describe(canceller: EchoCanceller, words: EchoCanceller | None) -> str:
    return canceller.name + (f", {words.name} for the words" if words is not None else "")

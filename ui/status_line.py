"""The bottom line: what the assistant is doing now and how fast the last reply came."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QWidget

from assistant.events import State

STATE_TEXT: dict[State, str] = {
    State.STOPPED: "Stopped",
    State.LOADING: "Loading…",
    State.LISTENING: "Listening",
    State.HEARING: "Hearing you",
    State.THINKING: "Thinking",
    State.SPEAKING: "Speaking",
}

_STAGE_NAMES: dict[str, str] = {
    "endpoint": "end of speech detected",
    "asr": "speech recognition",
    "llm_first_token": "first word",
    "llm_first_phrase": "first phrase",
    "tts_first_audio": "first audio synthesized",
    "voice_to_voice": "voice to voice",
}


def format_latency(timings_ms: dict[str, float | None]) -> tuple[str, str]:
    """The status text and a per-stage tooltip for one turn's ``TurnTimings``."""
    tip = "\n".join(
        f"{_STAGE_NAMES.get(name, name)}: {value:.0f} ms"
        for name, value in timings_ms.items()
        if value is not None
    )
    v2v = timings_ms.get("voice_to_voice")
    if v2v is not None:
        return f"Voice-to-voice {v2v / 1000:.2f} s", tip
    first = timings_ms.get("llm_first_token")
    if first is not None:  # a typed question has no "end of speech"
        return f"First word after {first / 1000:.2f} s", tip
    return "", tip


class StatusLine(QFrame):
    """A coloured dot and the State, a transient detail, how the assistant keeps from
    hearing itself, and the last turn's latency."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("statusLine")
        self._dot = QLabel()
        self._dot.setObjectName("stateDot")
        self._state = QLabel()
        self._state.setObjectName("stateText")
        self._detail = QLabel()
        self._detail.setObjectName("detailText")
        self._echo = QLabel()
        self._echo.setObjectName("echoText")
        self._latency = QLabel()
        self._latency.setObjectName("latencyText")
        self._latency.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(16, 7, 16, 7)
        layout.setSpacing(8)
        layout.addWidget(self._dot)
        layout.addWidget(self._state)
        layout.addWidget(self._detail, 1)
        layout.addWidget(self._echo)
        layout.addWidget(self._latency)
        self.state: State = State.STOPPED
        self.set_state(State.LOADING)

    def set_state(self, state: State, detail: str = "", text: str | None = None) -> None:
        """``text`` in place of the state's usual word (e.g. "Ready" for listening with
        no microphone to listen to)."""
        self.state = state
        self._state.setText(text or STATE_TEXT.get(state, str(state)))
        self._detail.setText(detail)
        self._dot.setProperty("state", str(state))
        self._dot.style().unpolish(self._dot)
        self._dot.style().polish(self._dot)

    def set_detail(self, detail: str) -> None:
        self._detail.setText(detail)

    def set_echo(self, description: str) -> None:
        """E.g. "echo cancellation on (WebRTC AEC3)" or "half duplex: ..."."""
        short = description.split(" (")[0].split(":")[0]
        self._echo.setText(short[:1].upper() + short[1:])
        self._echo.setToolTip(description)

    def echo_text(self) -> str:
        return self._echo.text()

    def set_timings(self, timings_ms: dict[str, float | None]) -> None:
        text, tip = format_latency(timings_ms)
        if text:
            self._latency.setText(text)
            self._latency.setToolTip(tip)

    def state_text(self) -> str:
        return self._state.text()

    def detail_text(self) -> str:
        return self._detail.text()

    def latency_text(self) -> str:
        return self._latency.text()

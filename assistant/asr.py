"""Speech recognition with faster-whisper.

Besides decoding, this module owns the "was anything said?" decision: Whisper invents
text for silence and noise, so segments are dropped on a high no-speech probability
with a low log-probability, or on a compression ratio that signals a repetition loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from assistant.compute import whisper_compute
from assistant.config import AsrConfig
from assistant.errors import ConfigError, ModelError


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    language_probability: float
    segments: list[Segment] = field(default_factory=list)
    duration_s: float = 0.0


SAMPLE_RATE = 16000


def contains_speech(audio: np.ndarray) -> bool:
    """Whether Silero VAD finds any speech: Whisper turns silence into "you" or "Thank you"."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(min_speech_duration_ms=150, min_silence_duration_ms=300)
    return bool(get_speech_timestamps(audio, options, sampling_rate=SAMPLE_RATE))


def language_codes() -> set[str]:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return set(_LANGUAGE_CODES)


def check_language(code: str | None) -> str | None:
    if code in (None, "", "auto"):
        return None
    if code not in language_codes():
        raise ConfigError(
            f"unknown language code {code!r}; use a Whisper code such as en, fr, de, es, zh"
        )
    return code


def _encode_once_model():
    """A WhisperModel that remembers its last encoder output.

    With the language left to detect, faster-whisper runs the encoder on the first 30 s
    twice: once to detect the language and again to decode. On a CPU the encoder is most of
    the cost of a short utterance, so the second run is served from this one-entry memo
    (keyed by a hash of the exact features, so it can never serve the wrong audio).
    """
    import hashlib

    from faster_whisper import WhisperModel

    class EncodeOnceWhisperModel(WhisperModel):
        _last: tuple[bytes, object] | None = None

        def encode(self, features: np.ndarray):
            key = hashlib.blake2b(np.ascontiguousarray(features).tobytes(), digest_size=16)
            digest = key.digest()
            if self._last is not None and self._last[0] == digest:
                return self._last[1]
            output = super().encode(features)
            self._last = (digest, output)
            return output

    return EncodeOnceWhisperModel


class WhisperRecognizer:
    def __init__(self, model_dir, config: AsrConfig) -> None:
        WhisperModel = _encode_once_model()  # noqa: N806 (a class)

        self.config = config
        self.language = check_language(config.language)
        choice = whisper_compute(config.device, config.compute_type)
        self.device = choice.device
        try:
            self.model = WhisperModel(
                str(model_dir),
                device=choice.device,
                compute_type=choice.compute_type,
                cpu_threads=config.cpu_threads,
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(
                f"cannot load the Whisper model in {model_dir}: {exc}. "
                "Fix: the folder's model.bin is corrupt or incomplete; reinstall or re-convert it"
            ) from None

    def transcribe(
        self,
        audio: np.ndarray,
        *,
        language: str | None = None,
        task: str | None = None,
        vad_filter: bool = False,
        timestamps: bool = False,
    ) -> Transcript:
        """Decode mono 16 kHz float32 ``audio``; empty text means nothing was said."""
        language = check_language(language) or self.language
        cfg = self.config
        if not vad_filter and not contains_speech(audio):
            return Transcript("", language or "", 0.0, [], audio.size / SAMPLE_RATE)
        detected_probability = None
        if language is None and not vad_filter and audio.size <= 30 * SAMPLE_RATE:
            language, detected_probability = self._detect_language(audio)
        segments, info = self.model.transcribe(
            audio,
            language=language,
            task=task or cfg.task,
            beam_size=cfg.beam_size,
            vad_filter=vad_filter,
            condition_on_previous_text=False,
            without_timestamps=not timestamps,
            no_speech_threshold=cfg.no_speech_threshold,
            log_prob_threshold=cfg.log_prob_threshold,
            compression_ratio_threshold=cfg.compression_ratio_threshold,
            temperature=0.0 if not timestamps else (0.0, 0.2, 0.4, 0.6),
        )
        kept = [
            Segment(s.start, s.end, s.text.strip())
            for s in segments
            if s.text.strip() and not self._hallucinated(s)
        ]
        return Transcript(
            text=" ".join(s.text for s in kept).strip(),
            language=info.language,
            language_probability=detected_probability or info.language_probability,
            segments=kept,
            duration_s=info.duration,
        )

    def _detect_language(self, audio: np.ndarray) -> tuple[str, float]:
        """Detect the language on exactly the window the decoder will encode next.

        faster-whisper detects on a window one frame longer than the one it decodes, so its
        own detection costs a second encoder run; this one is served again by the memo.
        """
        from faster_whisper.audio import pad_or_trim

        features = self.model.feature_extractor(audio)
        window = features[
            :, : min(features.shape[-1] - 1, self.model.feature_extractor.nb_max_frames)
        ]
        encoded = self.model.encode(pad_or_trim(window))
        token, probability = self.model.model.detect_language(encoded)[0][0]
        return token[2:-2], probability

    def _hallucinated(self, segment) -> bool:
        cfg = self.config
        silent = (
            segment.no_speech_prob > cfg.no_speech_threshold
            and segment.avg_logprob < cfg.log_prob_threshold
        )
        looping = segment.compression_ratio > cfg.compression_ratio_threshold
        return silent or looping

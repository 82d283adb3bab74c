"""Speech recognition with faster-whisper.

Besides decoding, this module owns the "was anything said?" decision: Whisper invents
text for silence and noise, so segments are dropped on a high no-speech probability
with a low log-probability. A live decode that loops (a compression ratio too high, or
a phrase repeated to the end) is tried again on the full window, then kept up to the
loop's first copy, so speech that was heard is not lost with the loop.
"""

from __future__ import annotations

import logging
import math
import string
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from assistant.compute import ComputeChoice, whisper_compute
from assistant.config import AsrConfig
from assistant.errors import ConfigError, ModelError
from assistant.turn_end import reads_finished

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


class Abandoned(Exception):
    """The caller stopped wanting this transcript midway (the user went on speaking)."""


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    language_probability: float
    segments: list[Segment] = field(default_factory=list)
    duration_s: float = 0.0


SAMPLE_RATE = 16000


@dataclass(frozen=True)
class FileDecoding:
    """How a recording is decoded (``WhisperRecognizer.transcribe_file``).

    Nobody waits on a file word by word, so it gets faster-whisper's own accuracy defaults
    where live turns trade them for latency: a beam of 5 instead of greedy decoding,
    Whisper's full 30 s window (the one it was trained on, and the one its timestamps
    need), a retry at higher temperatures when a segment loops or reads as unlikely, the
    previous segment's text as context, and faster-whisper's Silero pass with its default
    options, which skips silence and cuts long recordings at pauses.
    """

    beam_size: int = 5
    temperature: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    condition_on_previous_text: bool = True
    vad_filter: bool = True


FILE_DECODING = FileDecoding()

_DECODER_POSITIONS = 448  # Whisper's text context
_PROMPT_TOKENS = 8  # start, language, task, no timestamps, and a margin

# A live decode that ends in a phrase repeated this often, over this many characters,
# has looped (a capped loop is too short for the compression ratio to show it).
LOOP_COPIES = 3
LOOP_MIN_CHARS = 40


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


# How much more likely the language the user last spoke is, before hearing a new question.
LANGUAGE_PRIOR = 4.0


def system_language() -> str | None:
    """The desktop's language as a Whisper code (LANG=fr_FR.UTF-8 gives "fr"), if any.

    The C and POSIX locales give English: programs, this one included, speak English
    there (a minimal install or a container is often left on C.UTF-8), and without a
    hint Whisper base takes a short English question for French or Japanese now and then.
    """
    import locale
    import os

    for value in (
        os.environ.get("LC_ALL"),
        os.environ.get("LC_MESSAGES"),
        os.environ.get("LANG"),
        locale.getlocale()[0],
    ):
        if value:  # the first one set decides, as for the C library
            code = value.split("_")[0].split(".")[0].lower()
            if code in ("c", "posix"):
                return "en"
            return code if code in language_codes() else None
    return None


def pick_language(heard: list[tuple[str, float]], hint: str | None) -> tuple[str, float]:
    """The language of an utterance from Whisper's detection (most likely first), given
    the language the user last spoke (or the desktop's).

    Whisper base is unsure of the language of short questions: a synthetic "How many
    days are there in a week?" reads en 0.43, ja 0.21, and one capture of it through the
    virtual microphone went to Japanese, reply and all. People rarely switch language
    mid-conversation, so the hint counts LANGUAGE_PRIOR times as likely as any other
    language: a real switch (French heard as fr 0.9, en 0.01) still wins.
    """
    best, probability = heard[0]
    if hint is None or best == hint:
        return best, probability
    hinted = next((p for code, p in heard if code == hint), 0.0)
    return (hint, hinted) if hinted * LANGUAGE_PRIOR >= probability else (best, probability)


def fit_window(duration_s: float) -> int | None:
    """Encoder frames (100 per second) for a live utterance; None: Whisper's full 30 s.

    Whisper pads every input to 30 s, so a 2 s question pays for 28 s of silence in the
    encoder. CTranslate2 accepts a shorter window; trained only on 30 s, the model is a
    little less accurate on it, and several times faster. Too tight a window makes it
    repeat itself, hence the 2 s margin and the 8 s floor. Utterances near 30 s gain
    nothing and keep the full window.
    """
    if duration_s > 28.0:
        return None
    return math.ceil(100 * max(8.0, duration_s + 2.0))


def live_token_cap(duration_s: float) -> int:
    """faster-whisper's ``max_new_tokens`` for ``duration_s`` of live speech.

    Whisper can loop until its token cap (~9 ms a token here), a short window more
    often; speech runs well under 8 tokens a second, so a budget of 16 + 8 a second (per
    30 s window, as faster-whisper applies it) ends a loop early and never a sentence.
    CTranslate2's Whisper stops at half of the length faster-whisper asks for (prompt plus
    ``max_new_tokens``; OpenNMT/CTranslate2 issue 1856), so twice the budget is asked
    for, within the positions Whisper's decoder has.
    """
    budget = 16 + 8 * math.ceil(min(duration_s, 30.0))
    return min(2 * budget, _DECODER_POSITIONS - _PROMPT_TOKENS)


def said_once(text: str) -> str | None:
    """The sentence a looping decode repeats, if the text is nothing else.

    "Tell me a fun fact about the ocean. Tell me a fun fact about the ocean. Tell me a"
    gives "Tell me a fun fact about the ocean." (the token cap may cut the last copy).
    None if the text is not whole sentences said over and over.
    """
    words = text.split()
    for period in range(1, len(words) // 2 + 1):
        if not reads_finished(words[period - 1]):
            continue
        if all(words[i] == words[i % period] for i in range(period, len(words))):
            return " ".join(words[:period])
    return None


def without_loop(text: str) -> str | None:
    """The text up to the first copy of a phrase Whisper then repeats to the end.

    "I'm going to die, come on, come on, come on, come on, come on, come" gives "I'm going
    to die, come on,". Only a phrase said at least LOOP_COPIES times over at least
    LOOP_MIN_CHARS counts: people say "no, no, no", not that. None if the text does not
    end in such a loop. The token cap can cut the last word short ("... a fool, I'm not
    a fo"): a last word that only begins the one it repeats is left out.
    """
    words = text.split()
    keys = [word.strip(string.punctuation).casefold() for word in words]  # "Come" "on."
    for period in range(1, len(words) // LOOP_COPIES + 1):
        end = len(words)
        if keys[-1] != keys[-1 - period] and keys[-1 - period].startswith(keys[-1]):
            end -= 1  # cut short
        i = end - 1
        while i - period >= 0 and keys[i] == keys[i - period]:
            i -= 1
        start = i + 1 - period  # the first copy of the phrase
        repeated = words[start:end]
        if len(repeated) >= LOOP_COPIES * period and len(" ".join(repeated)) >= LOOP_MIN_CHARS:
            return " ".join(words[: start + period])
    return None


_CUDA_FIX = (
    "CTranslate2 needs the CUDA 12 cuBLAS and cuDNN 9 libraries "
    "(pip install nvidia-cublas-cu12 'nvidia-cudnn-cu12==9.*')"
)


def _open(model_dir, choice: ComputeChoice, config: AsrConfig, threads: int):
    WhisperModel = _encode_once_model()  # noqa: N806 (a class)
    try:
        return WhisperModel(
            str(model_dir),
            device=choice.device,
            compute_type=choice.compute_type,
            cpu_threads=config.cpu_threads or threads,
            local_files_only=True,
        )
    except ValueError as exc:
        if "compute type" in str(exc):  # a setting this device cannot run, not a bad file
            raise ConfigError(
                f"asr.compute_type {choice.compute_type!r} does not run on this "
                f"{choice.device.upper()}: {exc} Use 'auto' (int8 on a CPU, float16 on a GPU)"
            ) from None
        raise _unreadable(model_dir, exc) from None
    except OSError as exc:
        raise _unreadable(model_dir, exc) from None
    except RuntimeError as exc:
        if choice.device == "cuda":
            raise  # the GPU, not the files: the caller may fall back to the CPU
        raise _unreadable(model_dir, exc) from None


def _unreadable(model_dir, exc: Exception) -> ModelError:
    return ModelError(
        f"cannot load the Whisper model in {model_dir}: {exc}. "
        "Fix: the folder's model.bin is corrupt or incomplete; reinstall or re-convert it"
    )


def _open_on_cuda(model_dir, choice: ComputeChoice, config: AsrConfig):
    model = _open(model_dir, choice, config, threads=0)
    check_runs(model)
    return model


def check_runs(model) -> None:
    """One real encoder pass over a full window; raises RuntimeError if it cannot run.

    CTranslate2 opens cuBLAS and cuDNN only when it first computes, so a machine with an
    NVIDIA driver but without the CUDA 12 libraries (a CUDA 13-only system, say) loads the
    model fine and then fails every transcription with "Library libcublas.so.12 is not
    found". Running the encoder once at load turns that into a decision there.
    """
    frames = model.feature_extractor.nb_max_frames
    model.encode(np.zeros((model.model.n_mels, frames), np.float32))


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
        window_frames: int | None = None  # encode only this many frames (see fit_window)
        abandoned: Callable[[], bool] | None = None  # asked between the model's passes
        encoder: object | None = None  # a copy of the model that encodes on more threads

        def encode(self, features: np.ndarray):
            self._check()
            if self.window_frames:
                features = features[..., : self.window_frames]
            key = hashlib.blake2b(np.ascontiguousarray(features).tobytes(), digest_size=16)
            digest = key.digest()
            if self._last is not None and self._last[0] == digest:
                return self._last[1]
            output = self._encode(features)
            self._last = (digest, output)
            self._check()
            return output

        def _encode(self, features: np.ndarray):
            if self.encoder is None:
                return super().encode(features)
            from faster_whisper.transcribe import get_ctranslate2_storage

            if features.ndim == 2:
                features = np.expand_dims(features, 0)
            return self.encoder.encode(get_ctranslate2_storage(features))

        def _check(self) -> None:
            if self.abandoned is not None and self.abandoned():
                raise Abandoned()

    return EncodeOnceWhisperModel


def _encoder_copy(model_dir, choice: ComputeChoice):
    """A second copy of the model whose encoder runs on up to 4 cores; None on one core.

    The decoder's many small steps run best on one thread (see _default_threads), the
    encoder's few large matrix products on all: nothing else runs while the user's
    question is encoded. CTranslate2 fixes a model's threads when it loads, hence a copy
    (~110 MB resident); docs/performance.md has what it saves.
    """
    import os

    import ctranslate2

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if (cores or 1) < 2:
        return None
    try:
        return ctranslate2.models.Whisper(
            str(model_dir),
            device=choice.device,
            compute_type=choice.compute_type,
            intra_threads=min(cores, 4),
        )
    except (OSError, RuntimeError, ValueError) as exc:
        raise _unreadable(model_dir, exc) from None


class WhisperRecognizer:
    def __init__(self, model_dir, config: AsrConfig) -> None:
        self.config = config
        # The model's per-call settings (window, abandon check) are attributes: one decode
        # at a time, though the interpreter's captions and translation share it.
        self._lock = threading.RLock()
        self._keep_unlikely = False  # for the decode under the lock (see transcribe)
        self.language = check_language(config.language)
        # What the user last spoke, for detection (see pick_language).
        self.language_hint: str | None = system_language()
        # Why the GPU is not used although CTranslate2 sees one (None: it is, or none seen).
        self.cuda_problem: str | None = None
        choice = whisper_compute(config.device, config.compute_type)
        if choice.device == "cuda":
            try:
                self.model = _open_on_cuda(model_dir, choice, config)
                self.device = "cuda"
                return
            except RuntimeError as exc:
                if config.device == "cuda":
                    raise ModelError(
                        f"asr.device is 'cuda' but CTranslate2 cannot run Whisper on the GPU: "
                        f"{exc}. Fix: {_CUDA_FIX}, or set asr.device = 'cpu'"
                    ) from None
                self.cuda_problem = f"{exc} ({_CUDA_FIX})"
                log.warning("speech recognition falls back to the CPU: %s", self.cuda_problem)
                compute = "int8" if config.compute_type == "auto" else config.compute_type
                choice = ComputeChoice("cpu", compute)
        self.device = "cpu"
        self.model = _open(model_dir, choice, config, self._default_threads())
        if self._default_threads() == 1 and not config.cpu_threads:
            self.model.encoder = _encoder_copy(model_dir, choice)

    def transcribe(
        self,
        audio: np.ndarray,
        *,
        language: str | None = None,
        task: str | None = None,
        vad_filter: bool = False,
        timestamps: bool = False,
        abandoned: Callable[[], bool] | None = None,
        speech_known: bool = False,
        keep_unlikely: bool = False,
    ) -> Transcript:
        """Decode mono 16 kHz float32 ``audio``; empty text means nothing was said.

        ``speech_known``: a VAD has already found speech in it (the live endpointer), so
        the Silero pass that keeps silence away from Whisper is skipped.

        ``abandoned`` is asked between the encoder and the decoder (each ~90 ms for a
        short question here); once it says yes, ``Abandoned`` is raised, so a speculative
        attempt the user talked over frees the recogniser for the real one sooner.

        ``keep_unlikely``: keep segments Whisper itself doubts are speech (its no-speech
        probability high and its log-probability low), for audio already known to hold
        words: translating a caption's audio, poorly recorded speech still has a meaning.
        """
        language = check_language(language) or self.language
        if not vad_filter and not speech_known and not contains_speech(audio):
            return Transcript("", language or "", 0.0, [], audio.size / SAMPLE_RATE)
        with self._lock:
            self._keep_unlikely = keep_unlikely
            try:
                return self._transcribe_live(
                    audio, language, task, vad_filter, timestamps, abandoned
                )
            finally:
                self._keep_unlikely = False

    def _transcribe_live(self, audio, language, task, vad_filter, timestamps, abandoned):
        # Timestamps (file transcription) need Whisper's own 30 s window to be right.
        frames = None if timestamps else self._window_frames(audio.size / SAMPLE_RATE)
        self.model.window_frames = frames
        self.model.abandoned = abandoned
        try:
            result, looped = self._transcribe(audio, language, task, vad_filter, timestamps, frames)
            if looped and frames is not None:
                # A fitted window now and then sends Whisper round in a loop ("Tell me a
                # fun fact about the ocean. Tell me a fun fact about the..."), which the
                # filter drops; the 30 s window it was trained on hears the words, so pay
                # for it this once rather than lose the question.
                self.model.window_frames = None
                result, _ = self._transcribe(audio, language, task, vad_filter, timestamps, None)
            return result
        finally:
            self.model.window_frames = None
            self.model.abandoned = None

    def transcribe_file(
        self,
        audio: np.ndarray,
        *,
        language: str | None = None,
        task: str | None = None,
        decoding: FileDecoding = FILE_DECODING,
        progress: Callable[[float], None] | None = None,
    ) -> Transcript:
        """Decode a whole recording (mono 16 kHz float32) for accuracy, with timestamps.

        ``asr.beam_size`` and ``asr.window`` are the live path's; a file takes
        ``decoding`` and always the full window, whatever the recogniser was loaded for.
        ``progress`` is told the end (in seconds) of each segment as it is decoded.
        """
        language = check_language(language) or self.language
        with self._lock:
            self.model.window_frames = None
            result, _ = self._transcribe(
                audio, language, task, decoding.vad_filter, True, None, decoding, progress
            )
        return result

    def warm_up(self) -> None:
        """Run the encoder and decoder once (silence never reaches them in transcribe)."""
        self.model.window_frames = self._window_frames(1.0)
        try:
            segments, _ = self.model.transcribe(
                np.zeros(SAMPLE_RATE, np.float32), language="en", without_timestamps=True
            )
            list(segments)
        finally:
            self.model.window_frames = None

    def _default_threads(self) -> int:
        """One thread for fitted windows on a CPU, else CTranslate2's default.

        With a fitted window the decoder's many small steps dominate and a second thread
        only adds synchronisation, and it leaves the other core to the LLM and TTS. The
        full 30 s window gains from two.
        """
        return 1 if self._window_frames(1.0) is not None else 0

    def _window_frames(self, duration_s: float) -> int | None:
        window = self.config.window
        if window == "auto":
            window = "full" if self.device == "cuda" else "fit"
        return fit_window(duration_s) if window == "fit" else None

    def _transcribe(
        self,
        audio,
        language,
        task,
        vad_filter,
        timestamps,
        frames,
        file_decoding: FileDecoding | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> tuple[Transcript, bool]:
        """The transcript, and whether Whisper looped somewhere (those segments dropped).

        ``file_decoding``: a recording's options; None decodes as a live turn.
        """
        cfg = self.config
        duration_s = audio.size / SAMPLE_RATE
        if file_decoding is not None:
            decoding = {
                "beam_size": file_decoding.beam_size,
                "temperature": list(file_decoding.temperature),
                "condition_on_previous_text": file_decoding.condition_on_previous_text,
            }
        else:
            decoding = {
                "beam_size": cfg.beam_size,
                "temperature": 0.0 if not timestamps else (0.0, 0.2, 0.4, 0.6),
                "condition_on_previous_text": False,
                "max_new_tokens": None if timestamps else live_token_cap(duration_s),
            }
        if frames is not None:
            # Real silence after the speech, not faster-whisper's zero features: the model
            # has only ever seen the former, and mishears less on it.
            # Padded before language detection, so both share one encoder run.
            audio = np.pad(audio, (0, max(0, frames * 160 - audio.size)))
        detected_probability = None
        if language is None and not vad_filter and audio.size <= 30 * SAMPLE_RATE:
            language, detected_probability = pick_language(
                self._detect_language(audio), self.language_hint
            )
            if detected_probability >= 0.5:
                self.language_hint = language
        segments, info = self.model.transcribe(
            audio,
            language=language,
            task=task or cfg.task,
            vad_filter=vad_filter,
            without_timestamps=not timestamps,
            no_speech_threshold=cfg.no_speech_threshold,
            log_prob_threshold=cfg.log_prob_threshold,
            compression_ratio_threshold=cfg.compression_ratio_threshold,
            **decoding,
        )
        kept, looped = [], False
        for s in segments:
            if progress is not None:
                progress(s.end)
            text = s.text.strip()
            loops = self._looping(s) or (not timestamps and without_loop(text) is not None)
            if loops and not timestamps and s.no_speech_prob < cfg.no_speech_threshold:
                # The loop only repeated what was said: keep it once. On a fitted window
                # only whole sentences, as the full window may hear more; on the full one
                # (the last try), the words before any loop, so that the words heard, a
                # caption's translation above all, are not lost to it.
                once = said_once(text)
                if once is None and frames is None:
                    once = without_loop(text)
                if once is not None:
                    text, loops = once, False
            looped |= loops
            if text and not loops and (self._keep_unlikely or not self._silent(s)):
                kept.append(Segment(s.start, s.end, text))
        transcript = Transcript(
            text=" ".join(s.text for s in kept).strip(),
            language=info.language,
            language_probability=detected_probability or info.language_probability,
            segments=kept,
            duration_s=duration_s,
        )
        return transcript, looped

    def _detect_language(self, audio: np.ndarray) -> list[tuple[str, float]]:
        """Every language with its probability, most likely first, detected on exactly the
        window the decoder will encode next.

        faster-whisper detects on a window one frame longer than the one it decodes, so its
        own detection costs a second encoder run; this one is served again by the memo.
        """
        from faster_whisper.audio import pad_or_trim

        features = self.model.feature_extractor(audio)
        window = features[
            :, : min(features.shape[-1] - 1, self.model.feature_extractor.nb_max_frames)
        ]
        encoded = self.model.encode(pad_or_trim(window))
        return [(token[2:-2], p) for token, p in self.model.model.detect_language(encoded)[0]]

    def _silent(self, segment) -> bool:
        cfg = self.config
        return (
            segment.no_speech_prob > cfg.no_speech_threshold
            and segment.avg_logprob < cfg.log_prob_threshold
        )

    def _looping(self, segment) -> bool:
        return segment.compression_ratio > self.config.compression_ratio_threshold

"""Piper, in-process (onnxruntime), one voice loaded once, heard in pieces.

Each sentence's latent frames are turned into audio a piece at a time (see
``vits_split``): a short first piece so the listener hears the phrase sooner, longer ones
after it. Each piece is decoded with ``_CONTEXT_FRAMES`` of its neighbours on both sides
and then cut, which gives exactly the samples one whole-sentence run gives (the
vocoder's reach is under 12 frames; tests/test_tts_stream.py compares them).

Loudness is one gain per voice, set at load, rather than Piper's per-sentence peak
normalisation: that needs a sentence's last sample before its first can be played, and
it made short phrases up to twice as loud as long ones.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from assistant.config import TtsConfig
from assistant.derived_cache import CacheUnusable, DerivedCache
from assistant.errors import ModelError
from assistant.model_store import ModelStore
from assistant.tts.vits_split import cache_folder, split_voice

log = logging.getLogger(__name__)

_FIRST_FRAMES = 24  # ~0.28 s at 22.05 kHz: the first piece of every sentence
_LATER_FRAMES = 128  # the pieces after it (fewer, so less context is decoded twice)
_CONTEXT_FRAMES = 12  # decoded on each side of a piece and dropped
_CALIBRATION = "The quick brown fox jumps over the lazy dog, then rests in the warm sun."
_PEAK = 0.9  # the calibration sentence's loudest sample after the gain
_MIN_GAIN, _MAX_GAIN = 0.5, 8.0
_GAIN_FILE = "gain.json"


class PiperEngine:
    def __init__(self, config: TtsConfig, store: ModelStore) -> None:
        from piper import SynthesisConfig

        model, voice_config = store.piper_voice(config.voice)
        try:
            self.voice, self._vocoder = _load(model, voice_config, store.derived)
        except Exception as exc:  # onnx, onnxruntime and json raise a zoo of types
            raise ModelError(f"cannot load the Piper voice {model}: {exc}") from None
        self.sample_rate = self.voice.config.sample_rate
        self._synthesis = SynthesisConfig(length_scale=1.0)
        self._gain = self._voice_gain(cache_folder(model, store.derived) / _GAIN_FILE)
        self._synthesis = SynthesisConfig(length_scale=1.0 / max(0.25, config.speed))

    def _voice_gain(self, record: Path) -> float:
        """The gain that brings the calibration sentence's peak to ``_PEAK``, measured once
        per voice file and kept beside its split halves. Measuring costs ~0.3 s of start-up,
        and Piper's sampling noise moved it by up to 10% between starts (1.48-1.66 for the
        default voice), so the voice was not equally loud from one start to the next. A
        missing or damaged record is measured again."""
        try:
            gain = float(json.loads(record.read_text(encoding="utf-8"))["gain"])
            if _MIN_GAIN <= gain <= _MAX_GAIN:
                return gain
        except (OSError, ValueError, KeyError, TypeError):
            pass
        self._gain = 1.0
        peak = max((float(np.abs(a).max()) for a in self.synthesize(_CALIBRATION)), default=0)
        gain = float(np.clip(_PEAK / peak, _MIN_GAIN, _MAX_GAIN)) if peak > 1e-4 else 1.0
        with contextlib.suppress(OSError):  # a read-only cache: measured again next start
            record.write_text(json.dumps({"gain": gain}), encoding="utf-8")
        return gain

    @property
    def streams(self) -> bool:
        """Whether a sentence comes in pieces (the voice's graph could be split)."""
        return self._vocoder is not None

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        for phonemes in self.voice.phonemize(text):
            if not phonemes:
                continue
            ids = self.voice.phonemes_to_ids(phonemes)
            for audio in self._sentence(ids):
                yield np.clip(audio * self._gain, -1.0, 1.0).astype(np.float32, copy=False)

    def _sentence(self, ids: list[int]) -> Iterator[np.ndarray]:
        outputs = self.voice.session.run(None, self._inputs(ids))
        if self._vocoder is None:
            yield outputs[0].reshape(-1)
        else:
            yield from self.vocode(outputs[0], outputs[1:])

    def vocode(self, latent: np.ndarray, conditioning: list[np.ndarray]) -> Iterator[np.ndarray]:
        """Audio of a sentence's latent frames, piece by piece (unscaled)."""
        session, latent_name, conditioning_names = self._vocoder
        extra = dict(zip(conditioning_names, conditioning, strict=True))
        frames = latent.shape[-1]
        for start, end in pieces(frames):
            low, high = max(0, start - _CONTEXT_FRAMES), min(frames, end + _CONTEXT_FRAMES)
            piece = np.ascontiguousarray(latent[..., low:high])
            audio = session.run(None, {latent_name: piece, **extra})[0].reshape(-1)
            hop = audio.size // (high - low)
            yield audio[(start - low) * hop : (end - low) * hop]

    def _inputs(self, ids: list[int]) -> dict[str, np.ndarray]:
        """The voice's inputs, as Piper's own ``phoneme_ids_to_audio`` builds them."""
        config, synthesis = self.voice.config, self._synthesis
        scales = [
            config.noise_scale if synthesis.noise_scale is None else synthesis.noise_scale,
            config.length_scale if synthesis.length_scale is None else synthesis.length_scale,
            config.noise_w_scale if synthesis.noise_w_scale is None else synthesis.noise_w_scale,
        ]
        inputs = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array(scales, dtype=np.float32),
        }
        if config.num_speakers > 1:
            speaker = synthesis.speaker_id
            speaker = config.default_speaker_id if speaker is None else speaker
            inputs["sid"] = np.array([speaker], dtype=np.int64)
        return inputs


def pieces(frames: int) -> Iterator[tuple[int, int]]:
    """(start, end) frame ranges: a short first piece, then long ones, no sliver at the end."""
    start, size = 0, _FIRST_FRAMES
    while start < frames:
        end = min(frames, start + size)
        if frames - end < size // 2:
            end = frames
        yield start, end
        start, size = end, _LATER_FRAMES


def _load(model: Path, voice_config: Path, cache: DerivedCache):
    """The voice (its session computing up to the vocoder where it splits) and the vocoder
    (session, latent input name, conditioning input names), or None if it does not split."""
    import onnxruntime
    from piper import PiperConfig, PiperVoice

    config = PiperConfig.from_dict(json.loads(voice_config.read_text(encoding="utf-8")))
    try:
        split = split_voice(model, cache)
    except (OSError, CacheUnusable) as exc:  # a read-only or full cache: it speaks, unsplit
        log.warning(
            "cannot keep the split voice in %s (%s); speaking whole sentences", cache.root, exc
        )
        split = None

    def session(source) -> onnxruntime.InferenceSession:
        return onnxruntime.InferenceSession(
            source, sess_options=onnxruntime.SessionOptions(), providers=["CPUExecutionProvider"]
        )

    if split is None:
        return PiperVoice(session=session(str(model)), config=config), None
    voice = PiperVoice(session=session(str(split.acoustic)), config=config)
    return voice, (session(str(split.vocoder)), split.latent, split.conditioning)

"""Where the two measurements start and stop the clock, compared on the signals themselves.

The in-process figure runs from the pipeline's end of speech (the end of the last window
its Silero endpointer called voiced) to the first reply sample handed to the sink. The
vv-meter runs from the last 10 ms frame of the question above (peak - 40 dB) to the first
sustained frame of the reply above -50 dBFS. Both offsets are measured here on the same
WAVs and TTS audio with the meter's own functions, so no audio device is involved.
"""

from __future__ import annotations

import copy
import importlib.util
from functools import cache
from pathlib import Path
from types import ModuleType

import numpy as np

from assistant.audio.files import read_audio
from assistant.audio.resample import resample
from assistant.config import AssistantConfig
from assistant.vad import WINDOW, Endpointer, SileroVad, Utterance


@cache
def meter_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("vv_meter", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def speech_end_offset_ms(meter: ModuleType, config: AssistantConfig, wav: Path) -> float:
    """The pipeline's end of speech minus the meter's, in the WAV's own time line."""
    x, _, _ = meter.read_wav_16k(str(wav))
    db = meter.frame_db(x)
    _, last, threshold = meter.speech_bounds(db, 40.0, -60.0)
    acoustic_end = meter.refine_last_sample(x, last, threshold) / meter.SR

    rate = config.audio.sample_rate
    audio = np.concatenate([read_audio(wav, rate), np.zeros(2 * rate, np.float32)])
    endpointer, vad = Endpointer(copy.deepcopy(config.vad)), SileroVad()
    for i in range(audio.size // WINDOW):
        window = audio[i * WINDOW : (i + 1) * WINDOW]
        at = (i + 1) * WINDOW / rate  # the end of the window, as the pipeline stamps it
        for event in endpointer.process(window, vad(window), at):
            if isinstance(event, Utterance):
                return round(1000 * (event.speech_end_at - acoustic_end), 1)
    raise RuntimeError(f"no end of speech in {wav.name}")


def reply_onset_offset_ms(meter: ModuleType, samples: np.ndarray, rate: int) -> float:
    """How long the reply's first audio stays below the meter's onset threshold (-50 dBFS)."""
    x = resample(samples, rate, meter.SR)
    frame = meter.first_sustained(meter.frame_db(x), -50.0)
    if frame is None:
        return round(1000 * x.size / meter.SR, 1)
    return round(1000 * meter.refine_first_sample(x, frame, -50.0) / meter.SR, 1)

"""``transcribe FILE`` decodes for accuracy, not latency: on the same recordings it makes no
more word errors than faster-whisper with its own defaults on the same model folder.

The live path decodes greedily on a fitted window to answer sooner; a file has nobody
waiting on it word by word, so it takes a beam of 5, Whisper's full 30 s window and
faster-whisper's VAD. Its word error rate is printed next to plain faster-whisper's and
the live path's on the same set (run with -s to see it).
"""

from __future__ import annotations

import jiwer
import pytest
from audio_env import speak

from assistant.asr import FILE_DECODING, WhisperRecognizer
from assistant.audio import read_audio
from assistant.commands.transcribe import file_recognizer
from assistant.config import AssistantConfig
from assistant.model_store import ModelStore

pytestmark = pytest.mark.slow

# (text, engine, voice): statements, questions and requests in several synthetic voices.
# No numbers or British spellings, which Whisper may write differently from the reference.
SENTENCES = [
    ("The weather should clear up by tomorrow afternoon.", "espeak-ng", "en-us"),
    ("Could you remind me to call my sister this evening?", "flite", "kal"),
    ("Please turn off the lights in the living room.", "espeak-ng", "en-gb"),
    ("What is the difference between a virus and a bacterium?", "flite", "slt"),
    ("My usual breakfast is toast with butter and honey.", "espeak-ng", "en-us"),
    ("How long does it take to drive from Paris to Berlin?", "flite", "awb"),
    ("The library closes early on public holidays.", "espeak-ng", "en-us"),
    ("Tell me a short story about a brave little mouse.", "flite", "rms"),
    ("Why does the moon look bigger near the horizon?", "espeak-ng", "en-gb"),
    ("She bought fresh vegetables at the market yesterday morning.", "flite", "kal"),
    ("Can you explain how a rainbow forms after the rain?", "espeak-ng", "en-us"),
    ("We need to leave soon or we will miss the train.", "flite", "slt"),
]
TOLERANCE = 0.01  # about one word in the set
NORMALISE = jiwer.Compose(
    [
        jiwer.ToLowerCase(),
        jiwer.SubstituteRegexes({r"[-–—]": " "}),
        jiwer.RemovePunctuation(),
        jiwer.RemoveMultipleSpaces(),
        jiwer.Strip(),
        jiwer.ReduceToListOfListOfWords(),
    ]
)


def wer(references: list[str], hypotheses: list[str]) -> float:
    return jiwer.wer(
        references, hypotheses, reference_transform=NORMALISE, hypothesis_transform=NORMALISE
    )


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> list[tuple[str, object]]:
    folder = tmp_path_factory.mktemp("accuracy")
    return [
        (text, speak(text, folder / f"{i:02d}-{engine}-{voice}.wav", voice=voice, engine=engine))
        for i, (text, engine, voice) in enumerate(SENTENCES)
    ]


class GenerateSpy:
    """Stands in for the CTranslate2 model and records each greedy-or-beam decode's beam."""

    def __init__(self, model) -> None:
        self._model = model
        self.beams: list[int] = []

    def generate(self, *args, **kwargs):
        if "sampling_temperature" not in kwargs:  # the first try, before any fallback
            self.beams.append(kwargs["beam_size"])
        return self._model.generate(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._model, name)


def test_files_make_no_more_errors_than_plain_faster_whisper(recordings, monkeypatch):
    import faster_whisper.transcribe as fw_transcribe
    from faster_whisper import WhisperModel
    from faster_whisper.vad import VadOptions

    references = [text for text, _ in recordings]
    folder = ModelStore().whisper_dir()

    # The app's file path, watched: what the encoder gets, the beam, the VAD options.
    recognizer = file_recognizer(AssistantConfig())
    spy = GenerateSpy(recognizer.model.model)
    recognizer.model.model = spy
    frames: list[tuple[int | None, int]] = []
    encode = recognizer.model.encode
    monkeypatch.setattr(
        recognizer.model,
        "encode",
        lambda f: frames.append((recognizer.model.window_frames, f.shape[-1])) or encode(f),
    )
    vad_options: list[VadOptions] = []
    speech_timestamps = fw_transcribe.get_speech_timestamps
    monkeypatch.setattr(
        fw_transcribe,
        "get_speech_timestamps",
        lambda audio, options, **kw: (
            vad_options.append(options) or speech_timestamps(audio, options, **kw)
        ),
    )
    app = [recognizer.transcribe_file(read_audio(path)).text for _, path in recordings]
    monkeypatch.undo()

    assert FILE_DECODING.beam_size == 5 and FILE_DECODING.vad_filter
    assert spy.beams and set(spy.beams) == {5}, spy.beams
    assert frames and all(f == (None, 3000) for f in frames), frames  # the full 30 s window
    assert len(vad_options) == len(recordings)
    assert all(options == VadOptions() for options in vad_options), vad_options

    plain_model = WhisperModel(str(folder), compute_type="int8")
    plain = []
    for _, path in recordings:
        segments, _ = plain_model.transcribe(str(path))
        plain.append(" ".join(s.text.strip() for s in segments))
    del plain_model

    live_config = AssistantConfig().asr
    assert live_config.beam_size == 1  # the live path keeps its latency settings
    live_recognizer = WhisperRecognizer(folder, live_config)
    live = [live_recognizer.transcribe(read_audio(path)).text for _, path in recordings]

    app_wer, plain_wer, live_wer = (
        wer(references, app),
        wer(references, plain),
        wer(references, live),
    )
    report = (
        f"WER on {len(references)} sentences: app file path {app_wer:.3f}, "
        f"plain faster-whisper {plain_wer:.3f}, live path (greedy) {live_wer:.3f}"
    )
    print(report)
    for reference, a, p, g in zip(references, app, plain, live, strict=True):
        print(f"  ref:   {reference}\n  file:  {a}\n  plain: {p}\n  live:  {g}")
    assert app_wer <= plain_wer + TOLERANCE, report
    assert app_wer < 0.25, report  # the recordings are clear: a high rate means a broken path

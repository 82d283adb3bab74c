"""The voice is heard in pieces: the same samples as a whole-sentence run, sooner."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.derived_cache import DerivedCache
from assistant.tts.piper_engine import _FIRST_FRAMES, _LATER_FRAMES, pieces


def test_pieces_cover_every_frame_once_short_one_first():
    for frames in (1, 10, 24, 30, 37, 160, 1000):
        ranges = list(pieces(frames))
        assert ranges[0][0] == 0 and ranges[-1][1] == frames
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
        assert ranges[0][1] <= _FIRST_FRAMES * 3 // 2
        assert all(end - start < _LATER_FRAMES * 3 // 2 for start, end in ranges[1:])
    assert list(pieces(160))[0] == (0, _FIRST_FRAMES)


def test_vocoding_in_pieces_gives_the_whole_sentences_samples(engines):
    tts = engines.tts
    assert tts.streams  # the embedded voice splits at its vocoder
    ids = tts.voice.phonemes_to_ids(tts.voice.phonemize("The capital of France is Paris.")[0])
    latent, *conditioning = tts.voice.session.run(None, tts._inputs(ids))
    session, name, _ = tts._vocoder
    whole = session.run(None, {name: latent})[0].reshape(-1)
    parts = list(tts.vocode(latent, conditioning))
    assert len(parts) >= 2
    assert parts[0].size == whole.size * _FIRST_FRAMES // latent.shape[-1]
    assert np.abs(np.concatenate(parts) - whole).max() < 1e-5


def test_a_sentence_starts_with_a_short_piece_at_a_steady_level(engines):
    tts = engines.tts
    chunks = list(tts.synthesize("The ocean covers most of the planet, and it is deep."))
    assert chunks[0].size <= 256 * _FIRST_FRAMES * 3 // 2  # ~0.3 s, not the whole sentence
    audio = np.concatenate(chunks)
    assert audio.size / tts.sample_rate > 2.0
    peak = np.abs(audio).max()
    assert 0.3 < peak <= 1.0  # one gain per voice: loud enough, never past full scale


def test_a_graph_without_a_vits_vocoder_is_not_split(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from assistant.tts.vits_split import split_voice

    graph = helper.make_graph(
        [helper.make_node("Relu", ["input"], ["output"], name="/enc/Relu")],
        "plain",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4])],
    )
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph), str(path))
    cache = DerivedCache(tmp_path / "cache")
    assert split_voice(path, cache) is None
    assert split_voice(path, cache) is None  # remembered, not parsed again


def test_the_embedded_voice_splits_into_two_cached_halves(tmp_path):
    """What a first start does (``prepare-models`` runs it too): cut the graph once, then
    find the halves in the cache."""
    import onnxruntime

    from assistant.model_store import ModelStore
    from assistant.tts.vits_split import split_voice

    model, _ = ModelStore().piper_voice("default")
    split = split_voice(model, DerivedCache(tmp_path))
    assert split is not None and split.conditioning == ()  # one speaker: no embedding
    vocoder = onnxruntime.InferenceSession(str(split.vocoder))
    assert [i.name for i in vocoder.get_inputs()] == [split.latent]
    acoustic = onnxruntime.InferenceSession(str(split.acoustic))
    assert [o.name for o in acoustic.get_outputs()] == [split.latent]
    assert split_voice(model, DerivedCache(tmp_path)) == split  # the second time from the cache


def test_a_broken_or_unwritable_split_cache_never_silences_the_voice(tmp_path):
    """A damaged record is made again; a cache that cannot be written leaves the voice
    speaking whole sentences."""
    from assistant.model_store import ModelStore
    from assistant.tts.piper_engine import _load
    from assistant.tts.vits_split import split_voice

    model, voice_config = ModelStore().piper_voice("default")
    split = split_voice(model, DerivedCache(tmp_path))
    (split.vocoder.parent / "split.json").write_text("{not json", encoding="utf-8")
    assert split_voice(model, DerivedCache(tmp_path)) == split  # re-made, not a crash
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    voice, vocoder = _load(model, voice_config, DerivedCache(blocked))
    assert vocoder is None
    ids = voice.phonemes_to_ids(voice.phonemize("Hello.")[0])
    inputs = {
        "input": np.array([ids]),
        "input_lengths": np.array([len(ids)]),
        "scales": np.array([0.667, 1.0, 0.8], dtype=np.float32),
    }
    audio = voice.session.run(None, inputs)[0]  # the whole graph: audio, not latents
    assert audio.size > 0.2 * voice.config.sample_rate


@pytest.mark.slow
def test_the_voice_gain_is_measured_once_and_kept(tmp_path, monkeypatch):
    """The calibration sentence is synthesised at the first start only; a damaged record
    is measured again, and the gain is the same either way."""
    from assistant.config import TtsConfig
    from assistant.model_store import ModelStore
    from assistant.tts import piper_engine
    from assistant.tts.vits_split import cache_folder

    store = ModelStore()
    monkeypatch.setattr(store, "root", tmp_path)
    calibrations = []
    synthesize = piper_engine.PiperEngine.synthesize

    def counting(self, text):
        calibrations.append(text == piper_engine._CALIBRATION)
        return synthesize(self, text)

    monkeypatch.setattr(piper_engine.PiperEngine, "synthesize", counting)
    first = piper_engine.PiperEngine(TtsConfig(), store)
    record = cache_folder(store.piper_voice("default")[0], store.derived) / "gain.json"
    assert calibrations == [True] and record.is_file() and 1.0 < first._gain < 8.0
    again = piper_engine.PiperEngine(TtsConfig(speed=1.5), store)
    assert calibrations == [True] and again._gain == first._gain  # read, not measured
    record.write_text("{oops", encoding="utf-8")
    damaged = piper_engine.PiperEngine(TtsConfig(), store)
    assert calibrations == [True, True] and damaged._gain == pytest.approx(first._gain)

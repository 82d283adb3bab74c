"""The MT translator on tiny real models built here (tests/tiny_mt.py): Marian, NLLB-200
and M2M100 folders, loaded and run through the Translator interface as a downloaded one
would be. Random weights say nothing of quality, so those tests check what holds for any
weights; the trained ones know a few pairs by heart, so those check real translations,
and that the language tokens steer them."""

from __future__ import annotations

import json
import shutil

import pytest
import tiny_mt
import torch

from assistant.errors import ConfigError, ModelError
from assistant.interpret.translators.base import Context, SourceSegment
from assistant.interpret.translators.mt import (
    NLLB_CODES,
    MtTranslator,
    load_mt_translator,
    m2m_code,
    nllb_code,
)

STEPS = 300  # enough for the tiny models to hold every pair (final loss ~0.05)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("mt")
    return {
        "random": tiny_mt.build_marian(root / "opus-mt-fr-en"),
        "marian": tiny_mt.build_marian(root / "trained" / "opus-mt-fr-en", train_steps=STEPS),
        "nllb": tiny_mt.build_m2m(
            root / "nllb-tiny",
            {("fr", "en"): tiny_mt.FR_EN, ("fr", "de"): tiny_mt.FR_DE, ("zh", "en"): tiny_mt.ZH_EN},
            nllb=True,
            train_steps=STEPS,
        ),
        "m2m": tiny_mt.build_m2m(
            root / "m2m-tiny",
            {("fr", "en"): tiny_mt.FR_EN, ("fr", "de"): tiny_mt.FR_DE},
            train_steps=STEPS,
        ),
    }


@pytest.fixture(scope="module")
def loaded(models):
    translators = {name: load_mt_translator(path, 24) for name, path in models.items()}
    yield translators
    for translator in translators.values():
        translator.close()


def fr(text: str) -> SourceSegment:
    return SourceSegment(text, "fr")


# Any weights


def test_a_random_model_translates_into_its_own_vocabulary(loaded):
    translator = loaded["random"]
    text = translator.translate(fr("Le train part à huit heures."), "en")
    assert isinstance(text, str) and text
    ids = translator.generate("Le train part à huit heures.", "fr", "en")
    vocabulary = set(translator.tokenizer.get_vocab().values())
    assert set(ids) <= vocabulary and translator.tokenizer.unk_token_id not in ids
    known = set("".join(tiny_mt.CORPUS + [t for pair in tiny_mt.FR_EN for t in pair]))
    assert set(text) - {" "} <= known


def test_greedy_decoding_is_deterministic(loaded, models):
    segment = fr("Nous avons une réunion demain.")
    first = loaded["random"].translate(segment, "en")
    assert loaded["random"].translate(segment, "en") == first
    again = load_mt_translator(models["random"], 24)
    try:
        assert again.translate(segment, "en") == first
    finally:
        again.close()


def test_the_translation_stops_at_max_new_tokens(models):
    short, long = (load_mt_translator(models["random"], n) for n in (8, 40))
    try:
        few = short.generate("Merci beaucoup.", "fr", "en")
        many = long.generate("Merci beaucoup.", "fr", "en")
    finally:
        short.close()
        long.close()
    assert 0 < len(few) <= 8
    assert len(few) < len(many) <= 40


def test_the_folder_generation_settings_do_not_override_ours(models, tmp_path, capfd):
    """OPUS-MT folders ask for 4 beams and a max_length of 512."""
    folder = shutil.copytree(models["random"], tmp_path / "opus-mt-fr-en")
    settings = json.loads((folder / "generation_config.json").read_text())
    settings.update(num_beams=4, max_length=512, bad_words_ids=[[2]])
    (folder / "generation_config.json").write_text(json.dumps(settings))
    translator = load_mt_translator(folder, 6)
    try:
        capfd.readouterr()
        assert 0 < len(translator.generate("Merci beaucoup.", "fr", "en")) <= 6
        assert translator.generate("Merci.", "fr", "en") == loaded_ids(models, "Merci.", 6)
    finally:
        translator.close()
    assert "max_length" not in capfd.readouterr().err


def loaded_ids(models, text: str, limit: int) -> list[int]:
    """Greedy ids from the folder as built (no beams asked for)."""
    translator = load_mt_translator(models["random"], limit)
    try:
        return translator.generate(text, "fr", "en")
    finally:
        translator.close()


def test_a_cancelled_translation_stops_within_a_token(models):
    translator = load_mt_translator(models["random"], 400)
    checks = []

    def cancelled() -> bool:
        checks.append(True)
        return len(checks) > 3

    try:
        ids = translator.generate("Le train part à huit heures.", "fr", "en", cancelled)
        assert len(ids) <= 4  # of 400: checked after each token, true at the fourth
        checks.clear()
        assert translator.translate(fr("Le train part à huit heures."), "en", (), cancelled) == ""
        assert len(checks) <= 6  # one before the model runs, one after it stops
    finally:
        translator.close()


def test_cancelled_before_the_start_runs_nothing(loaded, monkeypatch):
    translator = loaded["random"]
    monkeypatch.setattr(translator, "_generate", lambda *a: pytest.fail("the model ran"))
    assert translator.translate(fr("Merci beaucoup."), "en", cancelled=lambda: True) == ""


def test_nothing_to_translate(loaded):
    translator = loaded["random"]
    assert translator.translate(fr("   "), "en") == ""
    # already in the target language: the words as they are
    assert translator.translate(SourceSegment("Thank you.", "en"), "en") == "Thank you."


# Memorised pairs


@pytest.mark.parametrize(("source", "expected"), tiny_mt.FR_EN)
def test_a_trained_marian_model_translates_what_it_learned(loaded, source, expected):
    assert loaded["marian"].translate(fr(source), "en") == expected


def test_the_context_does_not_change_the_translation(loaded):
    """MT models take one sentence: the segments before are not given to them."""
    context = [Context("Bonjour à tous.", "Hello everyone.")]
    segment = fr("Merci beaucoup.")
    assert loaded["marian"].translate(segment, "en", context) == "Thank you very much."


@pytest.mark.parametrize("family", ["nllb", "m2m"])
def test_the_target_token_picks_the_language(loaded, family):
    translator = loaded[family]
    for target, pairs in (("en", tiny_mt.FR_EN), ("de", tiny_mt.FR_DE)):
        for source, expected in pairs:
            assert translator.translate(fr(source), target) == expected


def test_nllb_translates_chinese_and_guesses_an_unknown_source_from_its_script(loaded):
    translator = loaded["nllb"]
    for source, expected in tiny_mt.ZH_EN:
        assert translator.translate(SourceSegment(source, "zh"), "en") == expected
        assert translator.translate(SourceSegment(source, ""), "en") == expected


# Language codes


def test_language_code_tables():
    assert nllb_code("zh") == "zho_Hans" and nllb_code("fr") == "fra_Latn"
    assert nllb_code("en") == "eng_Latn" and nllb_code("xx") is None
    assert m2m_code("fr") == "fr" and m2m_code("jw") == "jv" and m2m_code("zh") == "zh"
    from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES

    assert set(NLLB_CODES.values()) <= set(FAIRSEQ_LANGUAGE_CODES)


def test_nllb_inputs_and_forced_first_token(loaded):
    translator = loaded["nllb"]
    tokenizer = translator.tokenizer
    text = "Merci beaucoup."
    tokenizer.src_lang = "fra_Latn"  # the tokenizer's own way: the same ids
    assert translator.encode(text, "fr", "de") == tokenizer(text).input_ids
    assert translator.encode(text, "fr", "de")[0] == tokenizer.convert_tokens_to_ids("fra_Latn")
    german = tokenizer.convert_tokens_to_ids("deu_Latn")
    assert translator.forced_bos("de") == german
    assert translator.generate(text, "fr", "de")[0] == german
    assert translator.supports("fr", "ja") and translator.supports("", "zh")
    assert not translator.supports("fr", "xx")


def test_m2m_inputs_and_forced_first_token(loaded):
    translator = loaded["m2m"]
    tokenizer = translator.tokenizer
    ids = translator.encode("Merci beaucoup.", "fr", "de")
    body = tokenizer("Merci beaucoup.", add_special_tokens=False).input_ids
    assert ids == [tokenizer.convert_tokens_to_ids("__fr__"), *body, tokenizer.eos_token_id]
    german = tokenizer.convert_tokens_to_ids("__de__")
    assert translator.forced_bos("de") == german
    assert translator.generate("Merci beaucoup.", "fr", "de")[0] == german
    assert translator.supports("zh", "fr")
    assert not translator.supports("fr", "ja")  # no __ja__ token in this model


def test_describe_names_the_family_and_folder(loaded):
    assert loaded["marian"].describe() == "mt: Marian (opus-mt-fr-en) on cpu"
    assert loaded["nllb"].describe() == "mt: NLLB-200 (nllb-tiny) on cpu"
    assert loaded["m2m"].describe() == "mt: M2M100 (m2m-tiny) on cpu"


# Directions


def test_a_marian_model_does_the_direction_in_its_name(loaded):
    translator = loaded["random"]
    assert translator.supports("fr", "en") and translator.supports("", "en")
    assert not translator.supports("de", "en") and not translator.supports("fr", "de")
    with pytest.raises(ModelError) as error:
        translator.translate(SourceSegment("Guten Morgen.", "de"), "en")
    message = str(error.value)
    assert "opus-mt-fr-en cannot translate de into en" in message and "\n" not in message


def test_marian_directions_from_the_tokenizer_a_cache_path_or_nowhere(tmp_path):
    folders = {
        "settings": tiny_mt.build_marian(
            tmp_path / "custom", tokenizer_config={"source_lang": "fra", "target_lang": "en"}
        ),
        "cache": tiny_mt.build_marian(
            tmp_path / "models--Helsinki-NLP--opus-mt-de-en" / "snapshots" / "0123abc"
        ),
        "nowhere": tiny_mt.build_marian(tmp_path / "my-model"),
        "multi": tiny_mt.build_marian(tmp_path / "opus-mt-en-ROMANCE", targets=["fr", "es"]),
    }
    translators = {name: MtTranslator(path) for name, path in folders.items()}
    try:
        settings, cache = translators["settings"], translators["cache"]
        assert (settings.source, settings.target) == ("fr", "en")
        assert (cache.source, cache.target) == ("de", "en")
        assert cache.describe() == "mt: Marian (opus-mt-de-en) on cpu"
        assert translators["nowhere"].supports("de", "ja")  # no word of a direction: any
        multi = translators["multi"]
        assert multi.supports("en", "fr") and multi.supports("en", "es")
        assert not multi.supports("en", "ja") and not multi.supports("de", "fr")
        tag = multi.tokenizer.convert_tokens_to_ids(">>es<<")
        assert multi.encode("Hello everyone.", "en", "es")[0] == tag
        assert multi.translate(SourceSegment("Hello everyone.", "en"), "es")
    finally:
        for translator in translators.values():
            translator.close()


# Folders that are not MT models


def one_line_model_error(path) -> str:
    with pytest.raises(ModelError) as error:
        load_mt_translator(path, 16)
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    return message


def test_a_missing_folder(tmp_path):
    assert "does not exist" in one_line_model_error(tmp_path / "opus-mt-fr-en")
    (tmp_path / "file").write_text("not a folder")
    assert "is not a folder" in one_line_model_error(tmp_path / "file")
    assert "no config.json" in one_line_model_error(tmp_path)


def test_an_empty_setting_is_a_config_error():
    with pytest.raises(ConfigError, match="interpret.mt_model"):
        load_mt_translator("", 16)


def test_pickle_weights_are_never_loaded(tmp_path, monkeypatch):
    folder = tiny_mt.build_marian(tmp_path / "opus-mt-fr-en")
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04 a pickle that must not be read")
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    message = one_line_model_error(folder)
    assert "no .safetensors weights" in message and "pytorch_model.bin" in message


def test_a_model_that_is_not_sequence_to_sequence(tmp_path):
    from transformers import GPT2Config, T5Config

    GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=50).save_pretrained(tmp_path / "gpt2")
    assert "not a sequence-to-sequence" in one_line_model_error(tmp_path / "gpt2")
    T5Config(num_layers=1, d_model=8, d_ff=8, num_heads=1).save_pretrained(tmp_path / "t5")
    assert "holds a t5 model" in one_line_model_error(tmp_path / "t5")


def test_a_broken_config(tmp_path):
    (tmp_path / "config.json").write_text("{ not json")
    assert "cannot read the MT model's config" in one_line_model_error(tmp_path)


def test_a_tokenizer_that_cannot_load(tmp_path):
    """An OPUS-MT folder as published: SentencePiece files, read by MarianTokenizer (here
    broken ones; without the sentencepiece package the error says to install it)."""
    folder = tiny_mt.build_marian(tmp_path / "opus-mt-fr-en")
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer_config.json").write_text('{"tokenizer_class": "MarianTokenizer"}')
    for name in ("source.spm", "target.spm"):
        (folder / name).write_bytes(b"not a sentencepiece model")
    (folder / "vocab.json").write_text("{}")
    assert "cannot load the tokenizer" in one_line_model_error(folder)

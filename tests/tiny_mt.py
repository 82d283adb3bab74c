"""Tiny real translation models, built in a test's folder in seconds (tests only).

Each is a genuine transformers folder, as the interpreter's MT engine reads one: a
config, ``model.safetensors`` and a tokenizer (``tokenizer.json`` with its
``tokenizer_config.json``) trained here with the ``tokenizers`` library on the sentences
given. The weights are random, or trained for a few hundred steps on a handful of
sentence pairs until the model has them by heart, so a test can check a translation word
for word without downloading a model.

- ``build_marian``: one direction, like OPUS-MT (the direction in the folder's name).
- ``build_m2m``: many directions, the target chosen by a language token forced as the
  first word of the output: M2M100's ``__fr__`` tokens, or with ``nllb=True`` NLLB-200's
  ``fra_Latn`` ones through transformers' own ``NllbTokenizer``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    M2M100Config,
    M2M100ForConditionalGeneration,
    MarianConfig,
    MarianMTModel,
    NllbTokenizer,
    PreTrainedTokenizerFast,
)

# Sentences the tokenizers learn from, beside the pairs' own: a few languages and scripts.
CORPUS = [
    "Bonjour à tous, merci d'être venus.",
    "Le train part à huit heures.",
    "Nous parlons de la réunion de demain.",
    "Good morning everyone, thank you for coming.",
    "The train leaves at eight o'clock.",
    "We are talking about tomorrow's meeting.",
    "Guten Morgen zusammen, danke fürs Kommen.",
    "Der Zug fährt um acht Uhr ab.",
    "今天的会议很重要。",
    "火车八点出发。",
    "谢谢大家的到来。",
    "Where is the station? It is near the river.",
    "Où est la gare ? Elle est près de la rivière.",
]
# (source, translation) pairs a trained model learns by heart.
FR_EN = [
    ("Bonjour à tous.", "Hello everyone."),
    ("Le train part à huit heures.", "The train leaves at eight."),
    ("Où est la gare ?", "Where is the station?"),
    ("Merci beaucoup.", "Thank you very much."),
    ("Nous avons une réunion demain.", "We have a meeting tomorrow."),
    ("Il fait beau aujourd'hui.", "The weather is nice today."),
]
FR_DE = [
    ("Bonjour à tous.", "Hallo zusammen."),
    ("Le train part à huit heures.", "Der Zug fährt um acht."),
    ("Merci beaucoup.", "Vielen Dank."),
]
ZH_EN = [("火车八点出发。", "The train leaves at eight."), ("谢谢大家。", "Thank you all.")]

_DIMS = {
    "d_model": 32,
    "encoder_layers": 1,
    "decoder_layers": 1,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 64,
    "decoder_ffn_dim": 64,
    "max_position_embeddings": 128,
}


def _bpe(sentences: Sequence[str], specials: list[str], vocab_size: int) -> Tokenizer:
    """A SentencePiece-like BPE: words marked with "▁", so decoding restores the spaces."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials)
    tokenizer.train_from_iterator(sentences, trainer)
    return tokenizer


def _texts(pairs: Sequence[tuple[str, str]]) -> list[str]:
    return CORPUS + [text for pair in pairs for text in pair]


def build_marian(
    folder: Path,
    pairs: Sequence[tuple[str, str]] = FR_EN,
    *,
    train_steps: int = 0,
    tokenizer_config: dict | None = None,
    targets: Sequence[str] = (),
    seed: int = 0,
) -> Path:
    """A Marian model in ``folder`` (its name tells the direction, as OPUS-MT's does:
    "opus-mt-fr-en"). ``tokenizer_config``: keys added to tokenizer_config.json, such as
    MarianTokenizer's ``source_lang`` and ``target_lang``. ``targets``: the languages of a
    multi-target model, each with its ``>>fr<<`` token."""
    torch.manual_seed(seed)
    # Marian's layout: </s> is 0, <unk> 1, and <pad> starts every decoded sentence.
    tags = [f">>{code}<<" for code in targets]
    bpe = _bpe(_texts(pairs), ["</s>", "<unk>", "<pad>", *tags], vocab_size=400)
    bpe.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 0)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens=tags,
    )
    config = MarianConfig(
        vocab_size=len(tokenizer),
        pad_token_id=2,
        eos_token_id=0,
        decoder_start_token_id=2,
        forced_eos_token_id=0,
        **_DIMS,
    )
    model = MarianMTModel(config)
    examples = [(tokenizer(s).input_ids, tokenizer(t).input_ids) for s, t in pairs]
    _train(model, examples, pad=2, steps=train_steps)
    _save(folder, model, tokenizer, tokenizer_config)
    return folder


def build_m2m(
    folder: Path,
    pairs: dict[tuple[str, str], Sequence[tuple[str, str]]] | None = None,
    *,
    nllb: bool = False,
    languages: Sequence[str] = ("en", "fr", "de", "zh"),
    train_steps: int = 0,
    seed: int = 0,
) -> Path:
    """An M2M100-architecture model in ``folder`` whose tokenizer has M2M100's language
    tokens (``__fr__``) for ``languages``, or with ``nllb`` NLLB-200's (all 200 of them,
    as ``NllbTokenizer`` adds them). ``pairs``: {(source, target): [(text, translation)]}."""
    from assistant.interpret.translators.mt import NLLB_CODES

    torch.manual_seed(seed)
    pairs = pairs or {}
    every = [pair for group in pairs.values() for pair in group]
    bpe = _bpe(_texts(every), ["<s>", "<pad>", "</s>", "<unk>"], vocab_size=400)
    if nllb:
        state = json.loads(bpe.to_str())["model"]
        merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]
        tokenizer = NllbTokenizer(vocab=state["vocab"], merges=merges)
        tag = NLLB_CODES.__getitem__
    else:
        bpe.post_processor = processors.TemplateProcessing(
            single="$A </s>", special_tokens=[("</s>", 2)]
        )
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=bpe,
            bos_token="<s>",
            eos_token="</s>",
            unk_token="<unk>",
            pad_token="<pad>",
            extra_special_tokens=[f"__{code}__" for code in languages],
        )

        def tag(code: str) -> str:
            return f"__{code}__"

    config = M2M100Config(
        vocab_size=len(tokenizer),
        bos_token_id=0,
        pad_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=2,
        scale_embedding=True,
        **_DIMS,
    )
    model = M2M100ForConditionalGeneration(config)
    ids = tokenizer.convert_tokens_to_ids
    examples = []
    for (source, target), group in pairs.items():
        for text, translation in group:
            body = tokenizer(text, add_special_tokens=False).input_ids
            out = tokenizer(translation, add_special_tokens=False).input_ids
            examples.append(([ids(tag(source)), *body, 2], [ids(tag(target)), *out, 2]))
    _train(model, examples, pad=1, steps=train_steps)
    _save(folder, model, tokenizer)
    return folder


def _train(model, examples: list[tuple[list[int], list[int]]], *, pad: int, steps: int) -> None:
    """Fit the pairs by heart: the whole set is one batch, so a few hundred steps do.

    On one thread: a tiny model's operations are so small that a second OpenMP thread
    only adds its start and wait to each (8 times slower on 2 cores)."""
    model.final_loss = None
    if steps and examples:
        width = max(len(s) for s, _ in examples)
        height = max(len(t) for _, t in examples)
        inputs = torch.tensor([s + [pad] * (width - len(s)) for s, _ in examples])
        labels = torch.tensor([t + [-100] * (height - len(t)) for _, t in examples])
        optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        model.train()
        try:
            for _ in range(steps):
                loss = model(input_ids=inputs, attention_mask=inputs != pad, labels=labels).loss
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        finally:
            torch.set_num_threads(threads)
        model.final_loss = loss.item()
    model.eval()


def _save(folder: Path, model, tokenizer, tokenizer_config: dict | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    if tokenizer_config:
        path = folder / "tokenizer_config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **tokenizer_config}))

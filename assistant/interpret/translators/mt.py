"""A dedicated machine-translation model from a local folder: Marian/OPUS-MT, NLLB-200, M2M100.

These are sequence-to-sequence transformers trained only to translate, so a 75M Marian
does in ~0.7 s on one CPU core what a chat LLM many times its size does less reliably.
The three families differ only in how a direction is named:

- Marian (OPUS-MT) does one direction per model, named in the folder ("opus-mt-fr-en")
  or in MarianTokenizer's ``source_lang``/``target_lang``; a model with neither is taken
  at its word for any source. Multi-target ones ("opus-mt-en-ROMANCE") want a ``>>fr<<``
  token before the text.
- NLLB-200 and M2M100 (both M2M100 architecture) do any pair of their languages: the
  source is a language token before the text ("fra_Latn", "__fr__"), the target a
  language token forced as the first word of the output (``forced_bos_token_id``).

Decoding is greedy: on 2 cores a 4-beam search took 1.6 times as long as greedy for an
OPUS-MT-sized model (1.02 s against 0.65 s for 30 tokens), and a live caption is worth
more early. Torch gets half the cores (one of two): Whisper decodes the next segment's
partial captions meanwhile, and with one core taken two torch threads ran 2.3 times
slower than one (56 against 25 ms a token); alone, the second thread gained only 12%.
All torch work runs on one private thread, for the reason TransformersChat gives.

Only safetensors weights are loaded, never a pickle, and never code from the folder.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from assistant.errors import ConfigError, ModelError
from assistant.interpret.languages import has_cjk
from assistant.interpret.translators.base import Cancelled, Context, SourceSegment, Translator

log = logging.getLogger(__name__)

# Whisper's code -> NLLB-200's (ISO 639-3 and script).
NLLB_CODES = {
    "en": "eng_Latn", "zh": "zho_Hans", "fr": "fra_Latn", "de": "deu_Latn", "es": "spa_Latn",
    "it": "ita_Latn", "pt": "por_Latn", "nl": "nld_Latn", "ru": "rus_Cyrl", "uk": "ukr_Cyrl",
    "pl": "pol_Latn", "cs": "ces_Latn", "sv": "swe_Latn", "da": "dan_Latn", "fi": "fin_Latn",
    "no": "nob_Latn", "tr": "tur_Latn", "el": "ell_Grek", "ar": "arb_Arab", "he": "heb_Hebr",
    "hi": "hin_Deva", "ja": "jpn_Jpan", "ko": "kor_Hang", "vi": "vie_Latn", "th": "tha_Thai",
    "id": "ind_Latn", "yue": "yue_Hant", "ro": "ron_Latn", "hu": "hun_Latn", "bg": "bul_Cyrl",
    "ca": "cat_Latn", "hr": "hrv_Latn", "sk": "slk_Latn", "sl": "slv_Latn", "sr": "srp_Cyrl",
    "lt": "lit_Latn", "lv": "lvs_Latn", "et": "est_Latn", "fa": "pes_Arab", "ur": "urd_Arab",
    "bn": "ben_Beng", "ta": "tam_Taml", "ms": "zsm_Latn", "sw": "swh_Latn", "tl": "tgl_Latn",
}  # fmt: skip
# M2M100's codes are ISO 639-1, like Whisper's, but for these.
M2M_CODES = {"jw": "jv", "yue": "zh"}
# OPUS-MT names some languages by ISO 639-3 ("fra"), a few by a macrolanguage member.
_ISO3 = {code.split("_")[0]: whisper for whisper, code in NLLB_CODES.items()}
_ISO3.update({"cmn": "zh", "nor": "no", "ara": "ar", "fas": "fa", "msa": "ms", "swa": "sw"})
_OPUS_NAME = re.compile(r"opus-mt-(?:tc-(?:big-|base-)?)?([A-Za-z_]+)-([A-Za-z_]+)$")
_MARIAN_TAG = re.compile(r">>\w+<<")
_LABELS = {"marian": "Marian", "nllb": "NLLB-200", "m2m": "M2M100"}


def nllb_code(code: str) -> str | None:
    return NLLB_CODES.get(code)


def m2m_code(code: str) -> str:
    return M2M_CODES.get(code, code)


def _opus_code(code: str) -> str | None:
    """A side of an OPUS-MT name as a Whisper code; None for a group ("ROMANCE", "mul")."""
    if len(code) == 2 and code.islower():
        return code
    return _ISO3.get(code)


class MtTranslator(Translator):
    """Translates each segment on its own.

    The context is not used: these models are trained on single sentences, and given the
    previous segment too they translate it again with this one, with no reliable way to
    cut their output back to this segment's part.
    """

    name = "mt"

    def __init__(self, path: str | Path, max_new_tokens: int = 128) -> None:
        self.path = Path(path).expanduser()
        self.max_new_tokens = max_new_tokens
        self.device = "cpu"
        self._torch = ThreadPoolExecutor(1, thread_name_prefix="mt-torch")
        try:
            self._torch.submit(self._load).result()
        except BaseException:
            self._torch.shutdown(wait=False)
            raise

    # Loading

    def _load(self) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        path = self.path
        if not path.is_dir():
            what = "is not a folder" if path.exists() else "does not exist"
            raise ModelError(f"the MT model folder {path} {what}")
        if not (path / "config.json").is_file():
            raise ModelError(f"{path} has no config.json: not a transformers model folder")
        try:
            config = AutoConfig.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"cannot read the MT model's config in {path}: {_line(exc)}") from None
        kind = getattr(config, "model_type", "?")
        if not getattr(config, "is_encoder_decoder", False):
            raise ModelError(
                f"{path} holds a {kind} model, not a sequence-to-sequence translation model "
                "(Marian/OPUS-MT, NLLB-200 or M2M100)"
            )
        if kind not in ("marian", "m2m_100"):
            raise ModelError(
                f"{path} holds a {kind} model; the MT engine runs Marian/OPUS-MT, NLLB-200 "
                "and M2M100 models"
            )
        if not any(path.glob("*.safetensors")):
            pickled = [p.name for p in path.glob("*.bin")]
            found = (
                f"only {', '.join(pickled)}, which is never loaded (pickle)" if pickled else "none"
            )
            raise ModelError(f"{path} has no .safetensors weights ({found}): convert them")
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except Exception as exc:  # a broken folder fails anywhere inside transformers
            # OPUS-MT's and M2M100's tokenizers are SentencePiece files (NLLB's need not be)
            why = _line(exc)
            if "sentencepiece" in why.lower() and "not found" in why.lower():
                why = "it needs the sentencepiece package (pip install sentencepiece)"
            raise ModelError(f"cannot load the tokenizer in {path}: {why}") from None
        try:
            model = AutoModelForSeq2SeqLM.from_pretrained(
                path, local_files_only=True, use_safetensors=True, dtype=torch.float32
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load the MT model in {path}: {_line(exc)}") from None
        # OPUS-MT folders set max_length 512: max_new_tokens bounds a translation instead
        # (with both set, transformers warns at every segment)
        model.generation_config.max_length = None
        self.tokenizer = tokenizer
        self.model = model.eval()
        self._vocab = tokenizer.get_vocab()
        self._eos = config.eos_token_id
        self._max_input = max(8, getattr(config, "max_position_embeddings", 512) - 4)
        if kind == "marian":
            self.family = "marian"
        elif "eng_Latn" in self._vocab:
            self.family = "nllb"
        elif any(re.fullmatch(r"__[a-z]{2,3}__", token) for token in self._vocab):
            self.family = "m2m"
        else:
            raise ModelError(f"{path}: an M2M100 model without NLLB or M2M100 language tokens")
        self.source, self.target = (
            self._marian_direction() if self.family == "marian" else (None, None)
        )
        self._marian_tags = {t for t in self._vocab if _MARIAN_TAG.fullmatch(t)}
        torch.set_num_threads(max(1, min(4, (os.cpu_count() or 2) // 2)))
        log.info("MT: %s", self.describe())

    def _marian_direction(self) -> tuple[str | None, str | None]:
        """(source, target) as Whisper codes, None where any: MarianTokenizer's settings,
        else the OPUS-MT name (also inside a Hugging Face cache's snapshot path)."""
        try:
            settings = json.loads((self.path / "tokenizer_config.json").read_text("utf-8"))
        except (OSError, ValueError):
            settings = {}
        source, target = settings.get("source_lang"), settings.get("target_lang")
        if isinstance(source, str) and isinstance(target, str):
            return _opus_code(source), _opus_code(target)
        for part in reversed(self.path.parts):
            match = _OPUS_NAME.search(part)
            if match:
                return _opus_code(match[1]), _opus_code(match[2])
        return None, None

    # What it can do

    def _source_token(self, source: str) -> str | None:
        if self.family == "nllb":
            return nllb_code(source)
        if self.family == "m2m":
            return f"__{m2m_code(source)}__"
        return None

    def _target_token(self, target: str) -> str | None:
        """The token that names the target, or None where the model needs none."""
        if self.family != "marian":
            return self._source_token(target)
        if not self._marian_tags:
            return None
        nllb = nllb_code(target) or ""
        extra = ["cmn_Hans", "cmn"] if target == "zh" else []
        for name in (target, nllb.split("_")[0], nllb, *extra):
            if name and f">>{name}<<" in self._marian_tags:
                return f">>{name}<<"
        return ""  # none of its targets

    def supports(self, source: str, target: str) -> bool:
        if self.family == "marian":
            if self.source and source and source != self.source:
                return False
            if self.target:
                return target == self.target
            return self._target_token(target) != ""
        known = self._vocab.__contains__
        tag = self._target_token(target)
        return bool(tag and known(tag)) and (not source or known(self._source_token(source) or ""))

    def describe(self) -> str:
        return f"mt: {_LABELS[self.family]} ({_display_name(self.path)}) on {self.device}"

    # Translating

    def translate(
        self,
        segment: SourceSegment,
        target: str,
        context: Sequence[Context] = (),
        cancelled: Cancelled = lambda: False,
    ) -> str:
        text = segment.text.strip()
        if not text or cancelled():
            return ""
        if segment.language == target:
            return text
        ids = self.generate(text, segment.language, target, cancelled)
        if cancelled():
            return ""
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def generate(self, text: str, source: str, target: str, cancelled: Cancelled = lambda: False):
        """The translation's token ids (without the decoder's start token)."""
        return self._torch.submit(self._generate, text, source, target, cancelled).result()

    def encode(self, text: str, source: str, target: str) -> list[int]:
        """The encoder's input ids, built here rather than by the tokenizer's own
        ``src_lang`` so that every tokenizer class a folder may name gets the same ones:
        a generic tokenizer.json has the language of its save time baked in."""
        if not self.supports(source, target):
            raise ModelError(
                f"the MT model {_display_name(self.path)} cannot translate "
                f"{source or 'this language'} into {target}; use a model for that direction"
            )
        body = self.tokenizer(text, add_special_tokens=False).input_ids[: self._max_input]
        prefix: list[str] = []
        if self.family == "marian":
            tag = self._target_token(target)
            prefix = [tag] if tag else []
        else:
            # An unknown source (rare: Whisper names one) is guessed from the script.
            tag = self._source_token(source or ("zh" if has_cjk(text) else "en"))
            prefix = [tag] if tag in self._vocab else []
        return [self._vocab[t] for t in prefix] + body + [self._eos]

    def forced_bos(self, target: str) -> int | None:
        """The first output token for NLLB and M2M100: the target language's."""
        if self.family == "marian":
            return None
        return self._vocab.get(self._target_token(target) or "")

    def _generate(self, text: str, source: str, target: str, cancelled: Cancelled) -> list[int]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        class Stop(StoppingCriteria):
            """Checked after every token: a cancelled segment costs one more at most."""

            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), bool(cancelled()), dtype=torch.bool)

        inputs = torch.tensor([self.encode(text, source, target)])
        options = (
            {"forced_bos_token_id": self.forced_bos(target)} if self.family != "marian" else {}
        )
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=inputs,
                attention_mask=torch.ones_like(inputs),
                num_beams=1,
                do_sample=False,
                max_new_tokens=self.max_new_tokens,
                stopping_criteria=StoppingCriteriaList([Stop()]),
                **options,
            )
        return output[0, 1:].tolist()

    def close(self) -> None:
        self._torch.shutdown(wait=False)


def _display_name(path: Path) -> str:
    """The model's name: the folder's, or the repository's for a Hugging Face cache
    snapshot (…/models--Helsinki-NLP--opus-mt-fr-en/snapshots/<hash>)."""
    if path.parent.name == "snapshots" and path.parent.parent.name.startswith("models--"):
        return path.parent.parent.name.split("--")[-1]
    return path.name


def _line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def load_mt_translator(path: str | Path, max_new_tokens: int = 128) -> MtTranslator:
    """The ``interpret.mt_model`` folder as a translator; a one-line error where it is not
    one (a missing folder, another kind of model, pickle-only weights)."""
    if not str(path).strip():
        raise ConfigError(
            "interpret.mt_model is empty: name a Marian/OPUS-MT, NLLB-200 or M2M100 folder"
        )
    return MtTranslator(path, max_new_tokens)

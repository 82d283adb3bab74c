"""The interpreter's quality from speech, per direction: what a recording's captions say
(WER, CER for Chinese) and how well each engine translates them (chrF).

The 12 sentences of ``tests/data/bilingual.json`` are spoken by espeak-ng in en, fr, de,
es and zh (English also by flite), transcribed as ``voice-assistant interpret FILE`` does
(``file_recognizer(config).transcribe_file(audio, language=...)``, the language given as
with ``--from``), and the recognised text translated:

- llm: Gemma (``load_llm_translator``), through ``translation_quality.evaluate`` with the
  recognised text as the source side; beside it "llm (text)", the same on the set's own
  text, so the loss due to hearing shows;
- whisper: Whisper's translate task on the clip itself, into English only;
- mt: no model is installed here; ``MT_ENGINES`` is the hook (name -> Translator).

chrF (sacrebleu) against the set's sentence in the target language.

    .venv/bin/python tests/bench/interpret_quality.py [--json F] [--show]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import interpret_lag as lag  # noqa: E402  (puts the repository and tests/ on sys.path)
import translation_quality as tq  # noqa: E402

from assistant.interpret.translators.base import SourceSegment  # noqa: E402

# language: [(label, voice, engine, espeak options)]; the first one is translated
VOICES = {
    "en": [("espeak en-us", "en-us", "espeak-ng", ("-s", "150")), ("flite", "en-us", "flite", ())],
    "fr": [("espeak fr+m3", "fr+m3", "espeak-ng", ("-s", "120", "-g", "3"))],
    "de": [("espeak de+m3", "de+m3", "espeak-ng", ("-s", "120", "-g", "3"))],
    "es": [("espeak es+m3", "es+m3", "espeak-ng", ("-s", "130", "-g", "3"))],
    "zh": [("espeak cmn", "cmn", "espeak-ng", ("-s", "130", "-g", "3"))],
}
MT_ENGINES: dict = {}  # name -> Translator, where an MT model folder is installed


def normalised(text: str, language: str) -> str:
    if language == "zh":  # characters only: no spaces or punctuation
        return "".join(re.findall(r"\w", text))
    return " ".join(lag.words_of(text))


def error_rate(references: list[str], heard: list[str], language: str) -> float:
    import jiwer

    refs = [normalised(r, language) for r in references]
    hyps = [normalised(h, language) for h in heard]
    return jiwer.cer(refs, hyps) if language == "zh" else jiwer.wer(refs, hyps)


def chrf(outputs: list[str], references: list[str]) -> float:
    import sacrebleu

    return round(sacrebleu.corpus_chrf(outputs, [references]).score, 1)


def hear(recognizer, data: list[dict], folder: Path) -> dict:
    """{language: {voice label: (clips, recognised texts)}}"""
    heard: dict = {}
    for language, voices in VOICES.items():
        for label, voice, engine, options in voices:
            clips = lag.clips([row[language] for row in data], [(voice, engine, options)], folder)
            texts = [recognizer.transcribe_file(c, language=language).text for c in clips]
            heard.setdefault(language, {})[label] = (clips, texts)
    return heard


def whisper_translations(recognizer, clips, texts, language: str) -> list[str]:
    from assistant.interpret.translators.whisper_task import WhisperTranslator

    whisper = WhisperTranslator(recognizer)
    return [
        whisper.translate(SourceSegment(text, language, clip), "en")
        for clip, text in zip(clips, texts, strict=True)
    ]


def measure(show: bool = False, report=print) -> dict:
    from assistant.commands.transcribe import file_recognizer
    from assistant.config import AssistantConfig
    from assistant.interpret.translators.llm import load_llm_translator
    from assistant.model_store import ModelStore

    config = AssistantConfig()
    data = tq.sentences()
    recognizer = file_recognizer(config)
    with tempfile.TemporaryDirectory(prefix="interpret-quality-") as tmp:
        heard = hear(recognizer, data, Path(tmp))
    asr = {}
    for language, voices in heard.items():
        for label, (_, texts) in voices.items():
            key = language if label == VOICES[language][0][0] else f"{language} ({label})"
            references = [row[language] for row in data]
            asr[key] = {
                "voice": label,
                "error_rate": round(error_rate(references, texts, language), 3),
                "metric": "cer" if language == "zh" else "wer",
                "heard": texts if show else texts[:3],
            }
            report(f"  heard {key}: {100 * asr[key]['error_rate']:.1f} % {asr[key]['metric']}")
    llm = load_llm_translator(config, ModelStore())
    described = llm.describe()
    translation: dict = {}
    try:
        for source, target in tq.DIRECTIONS:
            clips, texts = next(iter(heard[source].values()))
            rows = [{**row, source: text} for row, text in zip(data, texts, strict=True)]
            engines = {"llm": llm, **MT_ENGINES}
            spoken = tq.evaluate(engines, [(source, target)], rows)
            written = tq.evaluate({"llm (text)": llm}, [(source, target)], data)
            cell = translation.setdefault(f"{source}->{target}", {})
            for name, result in {**spoken, **written}.items():
                row = result[f"{source}->{target}"]
                cell[name] = {"chrf": row["chrf"], "median_s": row["median_s"]}
                if show:
                    cell[name]["outputs"] = row["outputs"]
            if target == "en":
                outputs = whisper_translations(recognizer, clips, texts, source)
                references = [row["en"] for row in data]
                cell["whisper"] = {"chrf": chrf(outputs, references)}
                if show:
                    cell["whisper"]["outputs"] = outputs
            scores = ", ".join(f"{k} {v['chrf']}" for k, v in cell.items())
            report(f"  {source}->{target}: {scores}")
    finally:
        llm.close()
    return {"asr": asr, "translation": translation, "translator": described}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--show", action="store_true", help="keep every text heard and output")
    args = parser.parse_args()
    result = measure(args.show)
    import report

    report.print_interpreter({"quality": result})
    if args.json:
        args.json.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

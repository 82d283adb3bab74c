"""How far the live interpreter's captions and voice trail the speaker (issue #14).

Synthetic speech (flite and espeak-ng en-us in turn, 1 s pauses) is played through
``FileSource(realtime=True)`` into an ``Interpreter`` (file sink); events are stamped as
they arrive. faster-whisper times each clip's words once (``word_timestamps=True``);
the source's start time t0 maps audio seconds to the wall clock. Per word, "matched"
partial lag runs from its end to the first caption of its segment (confirmed +
tentative) that holds it (difflib alignment), "positional" to the first with >= k words.
Final caption, translation shown and speech start (AudioStarted) run from the segment's
last word end; "pipeline" is SegmentLag's own figure, from the VAD's last voiced window.

    .venv/bin/python tests/bench/interpret_lag.py [--json F] [--rows en-fr,de-en]
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import assistant.events as ev  # noqa: E402
from assistant.config import AssistantConfig  # noqa: E402

DATA = ROOT / "tests" / "data" / "bilingual.json"
RATE = 16000
GOALS_MS = {"partial_matched": 1000, "translation": 1500, "speech": 2000}
ENGLISH_VOICES = [("en-us", "flite", ()), ("en-us", "espeak-ng", ("-s", "150"))]
GERMAN_VOICES = [("de+m3", "espeak-ng", ("-s", "120", "-g", "3"))]
# name: (source language, target, engine, voices)
ROWS = {
    "en-fr": ("en", "fr", "auto", ENGLISH_VOICES),
    "de-en": ("de", "en", "whisper", GERMAN_VOICES),
}


def sentences(language: str, count: int = 10) -> list[str]:
    return [row[language] for row in json.loads(DATA.read_text("utf-8"))["sentences"]][:count]


def words_of(text: str) -> list[str]:
    return re.findall(r"[\w']+", text.lower())


def clips(texts: list[str], voices: list[tuple], folder: Path) -> list[np.ndarray]:
    from audio_env import read_wav, speak

    out = []
    for i, text in enumerate(texts):
        voice, engine, options = voices[i % len(voices)]
        wav = speak(text, folder / f"s{i}.wav", voice, engine, espeak_options=options)
        out.append(read_wav(wav)[0])
    return out


class WordTimer:
    """faster-whisper with word timestamps, on the recogniser's model folder."""

    def __init__(self) -> None:
        from faster_whisper import WhisperModel

        from assistant.model_store import ModelStore

        self.model = WhisperModel(str(ModelStore().whisper_dir()), compute_type="int8")

    def words(self, audio: np.ndarray, language: str) -> list[tuple[str, float, float]]:
        segments, _ = self.model.transcribe(
            audio, language=language, word_timestamps=True, beam_size=5
        )
        return [
            (w, word.start, word.end)
            for seg in segments
            for word in seg.words
            for w in words_of(word.word)
        ]


def session(clip_list: list[np.ndarray], timed: list[list], gap_s: float, lead_s: float = 0.5):
    """The clips one after another with ``gap_s`` of silence; each word's audio times."""
    parts, words, at = [np.zeros(int(lead_s * RATE), np.float32)], [], lead_s
    for clip, clip_words in zip(clip_list, timed, strict=True):
        words += [(w, at + s, at + e) for w, s, e in clip_words]
        parts += [clip, np.zeros(int(gap_s * RATE), np.float32)]
        at += (clip.size + int(gap_s * RATE)) / RATE
    return np.concatenate(parts), words


class EventLog:
    """Every interpreter event with its arrival time; AudioStarted paired with the
    SegmentTimings that follows it in the same callback (they carry no index otherwise)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.captions: list[tuple[float, ev.SourceCaption]] = []
        self.translated: dict[int, float] = {}
        self.texts: dict[int, str] = {}
        self.spoken: dict[int, float] = {}
        self.timings: dict[int, dict] = {}
        self.errors: list[str] = []
        self.changed = threading.Event()
        self._audio_at: float | None = None

    def __call__(self, event) -> None:
        now = time.monotonic()
        with self.lock:
            if isinstance(event, ev.SourceCaption):
                self.captions.append((now, event))
            elif isinstance(event, ev.TranslatedCaption):
                self.translated.setdefault(event.segment, now)
                self.texts.setdefault(event.segment, event.text)
            elif isinstance(event, ev.AudioStarted):
                self._audio_at = event.at
            elif isinstance(event, ev.SegmentTimings):
                self.timings[event.segment] = dict(event.timings_ms)
                if "speech" in event.timings_ms and self._audio_at is not None:
                    self.spoken.setdefault(event.segment, self._audio_at)
                    self._audio_at = None
            elif isinstance(event, ev.ErrorOccurred):
                self.errors.append(f"{event.stage}: {event.message}")
        self.changed.set()

    def finals(self) -> dict[int, ev.SourceCaption]:
        with self.lock:
            return {e.segment: e for _, e in self.captions if e.final}

    def settled(self, speak: bool) -> bool:
        """Every segment shown has closed, and each with words has its outputs."""
        with self.lock:
            shown = {e.segment for _, e in self.captions}
            finals = {e.segment for _, e in self.captions if e.final and e.confirmed}
            closed = {e.segment for _, e in self.captions if e.final}
            outputs = self.spoken if speak else self.translated
            return shown == closed and finals <= set(outputs)


def run_session(config, engines, audio: np.ndarray, sink=None, on_start=None, tail_s=60.0):
    """Plays ``audio`` at real-time pace into an Interpreter; returns (log, t0, left,
    the number of segments the VAD closed)."""
    from assistant.audio.sinks import FileSink
    from assistant.audio.sources import FileSource
    from assistant.pipeline.modes.interpreter import Interpreter

    source = FileSource(audio=audio, sample_rate=RATE, block_ms=config.audio.block_ms)
    interpreter = Interpreter(config, engines, source, sink or FileSink())
    log = EventLog()
    interpreter.subscribe(log)
    interpreter.start()
    t0 = source._t0  # audio second s is delivered from t0 + s on
    if on_start is not None:
        on_start(t0)
    try:
        source.finished.wait(audio.size / RATE + 60)
        deadline = time.monotonic() + tail_s
        while not log.settled(config.interpret.speak) and time.monotonic() < deadline:
            log.changed.clear()
            log.changed.wait(1.0)
    finally:
        left = interpreter.shutdown()
    return log, t0, left, len(interpreter.lag.lags_ms())


def cpu_jiffies() -> tuple[int, int]:
    """(busy jiffies of the whole machine, of this process), from /proc."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
    own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return busy, int(own[11]) + int(own[12])  # utime + stime


def outside_cores(since: tuple[int, int], seconds: float) -> float:
    """Cores other processes kept busy on average since ``since`` (disturbed figures)."""
    now = cpu_jiffies()
    jiffies = (now[0] - since[0]) - (now[1] - since[1])
    return round(jiffies / os.sysconf("SC_CLK_TCK") / max(seconds, 1e-3), 2)


def stats(values: list[float]) -> dict:
    if not values:
        return {"p50": None, "p90": None, "n": 0}
    return {
        "p50": round(float(np.median(values))),
        "p90": round(float(np.percentile(values, 90))),
        "n": len(values),
    }


def place(finals: dict, words: list) -> tuple[dict[int, list], int]:
    """Each timed word in the closed segment nearest it (within 0.3 s); count of the rest."""
    by_segment: dict[int, list] = {i: [] for i in finals}
    unplaced = 0
    for w in words:
        mid = (w[1] + w[2]) / 2
        home = [i for i, f in finals.items() if f.start - 0.3 <= mid <= f.end + 0.3]
        if not home:
            unplaced += 1
            continue
        centre = {i: abs((finals[i].start + finals[i].end) / 2 - mid) for i in home}
        by_segment[min(home, key=centre.__getitem__)].append(w)
    return by_segment, unplaced


def first_shown(ref: list[str], captions: list) -> tuple[dict[int, float], dict[int, float]]:
    """When each word k first appeared: aligned with a caption's word, and merely the k-th."""
    matched: dict[int, float] = {}
    counted: dict[int, float] = {}
    for at, event in captions:
        shown = words_of(f"{event.confirmed} {event.tentative}")
        for k in range(min(len(shown), len(ref))):
            counted.setdefault(k, at)
        aligned = difflib.SequenceMatcher(None, ref, shown, autojunk=False)
        for block in aligned.get_matching_blocks():
            for k in range(block.a, block.a + block.size):
                matched.setdefault(k, at)
    return matched, counted


def analyse(log: EventLog, t0: float, words: list[tuple[str, float, float]]) -> dict:
    """Per-word and per-segment lags (ms) from the event log and the timed words."""
    finals = log.finals()
    by_segment, unplaced = place(finals, words)
    matched, positional, missed, segments = [], [], 0, []
    with log.lock:
        captions = list(log.captions)
    for index, seg_words in by_segment.items():
        if not seg_words:
            continue
        mine_captions = [(at, e) for at, e in captions if e.segment == index]
        first_match, first_count = first_shown([w for w, _, _ in seg_words], mine_captions)
        ends = [t0 + end for _, _, end in seg_words]
        mine = [1000 * (first_match[k] - e) for k, e in enumerate(ends) if k in first_match]
        positional += [1000 * (first_count[k] - e) for k, e in enumerate(ends) if k in first_count]
        missed += len(ends) - len(mine)
        matched += mine
        end = ends[-1]
        final_at = next(at for at, e in mine_captions if e.final)
        row = {"segment": index, "words": len(seg_words), "text": finals[index].confirmed}
        row["translated"] = log.texts.get(index)
        row["partial_p50"] = float(np.median(mine)) if mine else None
        row["caption"] = 1000 * (final_at - end)
        if index in log.translated:
            row["translation"] = 1000 * (log.translated[index] - end)
        if index in log.spoken:
            row["speech"] = 1000 * (log.spoken[index] - end)
        row["pipeline"] = log.timings.get(index, {})
        segments.append(row)

    def column(key: str, rows=segments) -> list[float]:
        return [r[key] for r in rows if r.get(key) is not None]

    with_words = [i for i, f in finals.items() if f.confirmed]
    return {
        "words": len(words),
        "words_unplaced": unplaced,
        "words_never_matched": missed,
        "partial_matched_ms": stats(matched),
        "partial_positional_ms": stats(positional),
        "caption_ms": stats(column("caption")),
        "translation_ms": stats(column("translation")),
        "speech_ms": stats(column("speech")),
        "pipeline_ms": {
            k: stats(column(k, [r["pipeline"] for r in segments]))
            for k in ("caption", "translation", "speech")
        },
        "segments_captioned": len(with_words),
        "segments_translated": len(set(with_words) & set(log.translated)),
        "segments_spoken": len(set(with_words) & set(log.spoken)),
        "errors": log.errors[:5],
        "segments": segments,
    }


def configured(source: str, target: str, engine: str) -> AssistantConfig:
    config = AssistantConfig()
    config.interpret.target, config.interpret.engine, config.interpret.speak = target, engine, True
    config.interpret.source = None if source == "en" else source  # English: detected
    return config


def caption_lag(config, engines, *, language="en", voices=ENGLISH_VOICES, count=10, gap_s=1.0):
    """One realistic session on loaded ``engines``; returns the figures (ms)."""
    timer = WordTimer()
    with tempfile.TemporaryDirectory(prefix="interpret-lag-") as tmp:
        clip_list = clips(sentences(language, count), voices, Path(tmp))
    timed = [timer.words(c, language) for c in clip_list]
    del timer
    audio, words = session(clip_list, timed, gap_s)
    jiffies, began = cpu_jiffies(), time.monotonic()
    log, t0, left, closed = run_session(config, engines, audio)
    outside = outside_cores(jiffies, time.monotonic() - began)
    result = analyse(log, t0, words)
    result.update(
        segments_closed_by_vad=closed,
        outside_cpu_cores=outside,
        sentences=count,
        audio_s=round(audio.size / RATE, 1),
        engines=engines.describe(),
        source=config.interpret.source or "auto",
        target=config.interpret.target,
        not_stopped=left,
    )
    return result


def measure(rows: tuple[str, ...] = tuple(ROWS), report=print) -> dict:
    from assistant.interpret.engines import load_interpreter_engines

    out, recognizer = {}, None
    for name in rows:
        language, target, engine, voices = ROWS[name]
        config = configured(language, target, engine)
        engines = load_interpreter_engines(config, recognizer=recognizer)
        recognizer = engines.recognizer
        report(f"interpreter lag {name}: {engines.describe()}")
        try:
            out[name] = caption_lag(config, engines, language=language, voices=voices)
        finally:
            engines.close()
        out[name]["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated: en-fr,de-en")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    result = measure(args.rows.split(","))
    import report

    report.print_interpreter({"lag": result})
    if args.json:
        args.json.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

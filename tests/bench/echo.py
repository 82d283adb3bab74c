"""Loudspeaker echo: how much the canceller removes and what barge-in makes of the rest.

The assistant's own voice (the Piper voice reading a paragraph) is played into a
simulated room: a direct path after ``delay`` ms and decaying reflections over 250 ms,
at an echo level relative to the voice. For each delay and level:

- echo reduction: microphone level minus WebRTC AEC3's output level, converged half;
- frames of echo alone the level test (``DoubleTalk``) takes for someone talking over the
  reply (louder than any echo of what played), per minute;
- how often the reply would be ducked for a voice that may be starting over it (a
  window Silero calls speech in AEC3's output, louder than the echo could be), per
  minute of echo alone;
- false barge-ins per minute of the assistant's speech, from the cancelled echo alone:
  what Silero + the endpointer call speech in AEC3's output (an ``Immediate`` policy
  would stop there), and what survives ``WordsFirst``'s probes through Whisper on Speex's
  output and its level test (``DoubleTalk``), as the app does with
  ``audio.echo_canceller = "auto"``;
- with a user's question spoken over the reply (as it starts and 0.5 s into it, before
  the cancellers have converged, and at 2, 6 and 10 s of the second pass): the barge-in
  latency (question start to the probe whose words interrupt, the recogniser's time
  included; the reply ducked from the check's start, as live) and the word error rate
  of the question as Speex lets it through (and as AEC3 would), cut where it starts
  (perfect segmentation) and as the endpointer cuts it (from where AEC3's output shows
  it, pre-roll included);
- the canceller's CPU time per second of audio.

Run alone with ``python tests/bench/echo.py``; ``make bench`` records it as ``echo``.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audio_env import read_wav  # noqa: E402

from assistant.asr import WhisperRecognizer  # noqa: E402
from assistant.audio.resample import resample  # noqa: E402
from assistant.config import AssistantConfig  # noqa: E402
from assistant.echo.double_talk import DoubleTalk  # noqa: E402
from assistant.echo.presence import EchoPresence  # noqa: E402
from assistant.echo.speex import SpeexCanceller  # noqa: E402
from assistant.echo.webrtc import WebRtcCanceller  # noqa: E402
from assistant.events import PhrasePlaying  # noqa: E402
from assistant.model_store import ModelStore  # noqa: E402
from assistant.pipeline.barge_in import WordsFirst  # noqa: E402
from assistant.tts.piper_engine import PiperEngine  # noqa: E402
from assistant.vad import WINDOW, Endpointer, SileroVad, SpeechStart  # noqa: E402

RATE = 16000
DELAYS_MS = (20, 60, 120, 250)
LEVELS_DB = (0, -10)
REPLY = (
    "The ocean covers more than seventy percent of our planet. Its deepest point, the "
    "Challenger Deep, lies almost eleven kilometres below the surface. Sunlight fades within "
    "a few hundred metres, and below that many animals make their own light. Whales sing to "
    "each other across whole ocean basins, and some of their songs change from year to year."
)
QUESTION = "What is the capital of France?"
DUCK = 10 ** (-30 / 20)  # the sink's ducking while speech over the reply is checked


def room(far: np.ndarray, delay_ms: float, level_db: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    response = np.zeros(int(0.3 * RATE), np.float32)
    direct = int(delay_ms * RATE / 1000)
    response[direct] = 1.0
    for k in range(1, 10):
        at = min(response.size - 1, direct + int(rng.integers(40, int(0.25 * RATE))))
        response[at] += rng.normal(0, 0.35) * np.exp(-k / 3)
    return (np.convolve(far, response)[: far.size] * 10 ** (level_db / 20)).astype(np.float32)


def cancel(far: np.ndarray, mic: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Both cancellers over the whole signal, as ``audio.echo_canceller = "auto"`` runs
    them: (WebRTC's output, where the VAD looks; Speex's, what is transcribed; CPU seconds
    of the pair per audio second)."""
    webrtc, speex = WebRtcCanceller(), SpeexCanceller()
    frame = webrtc.frame_samples
    out = np.zeros(mic.size // frame * frame, np.float32)
    words = np.zeros_like(out)
    start = time.process_time()
    for i in range(0, out.size, frame):
        near, played = mic[i : i + frame], far[i : i + frame]
        out[i : i + frame] = webrtc.process(near, played)
        words[i : i + frame] = speex.process(near, played)
    return out, words, (time.process_time() - start) / (out.size / RATE)


def double_talk(far: np.ndarray, mic: np.ndarray) -> DoubleTalk:
    """The level evidence the canceller stage gathers for the policy, over the whole signal."""
    presence = EchoPresence()
    evidence = DoubleTalk(presence)
    frame = RATE // 100
    for i in range(0, mic.size - frame + 1, frame):
        near, played = mic[i : i + frame], far[i : i + frame]
        presence.observe(near, played)
        evidence.observe(near, played, i / RATE)
    return evidence


class _Playing(WordsFirst):
    """The policy with the reply audible throughout, as it is over the measured pass."""

    def audible(self, at: float) -> bool:
        return True


def rooms_made(far: np.ndarray, mic: np.ndarray, cleaned: np.ndarray, vad, config) -> list[int]:
    """Sample indices where the Endpointing stage would make room for a voice (duck the
    reply for up to a second): a window Silero calls speech in AEC3's output that the
    level test says may be someone (``WordsFirst.may_be_voice``)."""
    vad.reset()
    presence = EchoPresence()
    evidence = DoubleTalk(presence)
    policy = _Playing(None, lambda down: None, presence, double_talk=evidence)
    frame, observed, made, until = RATE // 100, 0, [], 0
    for i in range(0, cleaned.size - WINDOW + 1, WINDOW):
        while observed + frame <= i + WINDOW:
            near, played = mic[observed : observed + frame], far[observed : observed + frame]
            presence.observe(near, played)
            evidence.observe(near, played, observed / RATE)
            observed += frame
        speech = vad(cleaned[i : i + WINDOW]) >= config.threshold
        if speech and i >= until and policy.may_be_voice(i / RATE, (i + WINDOW) / RATE):
            made.append(i)
            until = i + RATE  # the room lasts a second
    return made


def level_db(x: np.ndarray) -> float:
    return 10 * np.log10(float(np.mean(x.astype(np.float64) ** 2)) + 1e-12)


def speech_starts(audio: np.ndarray, vad: SileroVad, config) -> list[int]:
    """Sample index at which the endpointer says each utterance in ``audio`` started."""
    vad.reset()
    endpointer = Endpointer(config)
    starts = []
    for i in range(0, audio.size - WINDOW + 1, WINDOW):
        window = audio[i : i + WINDOW]
        for event in endpointer.process(window, vad(window), i):
            if isinstance(event, SpeechStart):
                starts.append(i + WINDOW)
    return starts


def as_cut(cleaned, words, at, end, vad, config) -> np.ndarray | None:
    """The question as the Endpointing stage hands it over when it starts at sample
    ``at`` and ends at ``end``: from its start found in AEC3's output, pre-roll included
    (None if never found there)."""
    vad.reset()
    endpointer = Endpointer(config)
    first = max(0, at - 2 * RATE)
    first -= first % WINDOW
    for i in range(first, end, WINDOW):
        heard = words[i : i + WINDOW]
        events = endpointer.process(heard, vad(cleaned[i : i + WINDOW]), i)
        if any(isinstance(e, SpeechStart) for e in events):
            return np.concatenate([endpointer.heard(), words[i + WINDOW : end]])
    return None


def probe(words, start, recognizer, policy, pre_roll) -> tuple[bool, float | None]:
    """What the Endpointing stage's probes decide about speech starting at ``start``
    (found in WebRTC's output; ``words`` is what they transcribe): (interrupts, seconds
    from the start to the verdict, recogniser time included)."""
    free_s = 0.0  # when the recogniser is done with the probe before (a probe waits for it)
    for after_s in policy.probes_s:
        at_s = max(after_s, free_s)
        end = start + int(at_s * RATE)
        if end > words.size:
            break
        clip = words[max(0, start - pre_roll) : end]
        began = time.perf_counter()
        text = recognizer.transcribe(clip, speech_known=True).text
        free_s = at_s + time.perf_counter() - began
        if policy.judge(text, max(0, start - pre_roll) / RATE, end / RATE):
            return True, free_s
    return False, None


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    def norm(s: str) -> str:
        return " ".join(s.lower().replace("?", " ").replace(".", " ").replace(",", " ").split())

    return float(jiwer.wer(norm(reference), norm(hypothesis) or "-"))


def measure() -> dict:
    config = AssistantConfig()
    store = ModelStore()
    voice = PiperEngine(config.tts, store)
    # sentence by sentence, as the pipeline's phrases: the policy hears when each plays
    sentences = re.findall(r"[^.]+\.", REPLY)
    pieces = [
        resample(np.concatenate(list(voice.synthesize(s))), voice.sample_rate, RATE)
        for s in sentences
    ]
    onsets = np.cumsum([0] + [p.size for p in pieces[:-1]]) / RATE
    far = np.concatenate(pieces)
    played = [PhrasePlaying(1, s.strip(), t) for t0 in (0, far.size / RATE)
              for s, t in zip(sentences, onsets + t0, strict=True)]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "q.wav"
        subprocess.run(["espeak-ng", "-v", "en-us+f3", "-w", str(path), QUESTION], check=True)
        question = read_wav(path)[0]
    recognizer = WhisperRecognizer(store.whisper_dir(), config.asr)
    vad = SileroVad()
    pre_roll = config.vad.pre_roll_ms * RATE // 1000
    far = np.concatenate([far, far])  # the first pass converges, the second is measured
    measured = slice(far.size // 2, None)
    minutes = (far.size // 2) / RATE / 60

    def policy_for(far: np.ndarray, mic: np.ndarray) -> WordsFirst:
        policy = WordsFirst(double_talk=double_talk(far, mic))
        for event in played:
            policy.follow(event)
        return policy

    rows = []
    for delay in DELAYS_MS:
        for level in LEVELS_DB:
            mic = room(far, delay, level)
            policy = policy_for(far, mic)
            louder = double_talk(far, mic).frames_over_echo(far.size / 2 / RATE, far.size / RATE)
            out, kept, cpu = cancel(far, mic)
            echo_only = out[measured]
            starts = speech_starts(echo_only, vad, config.vad)
            made = [i for i in rooms_made(far, mic, out, vad, config.vad) if i >= far.size // 2]
            residue = kept[measured]
            false = sum(probe(residue, s, recognizer, policy, pre_roll)[0] for s in starts)
            latencies, errors, errors_webrtc, cut = [], [], [], []
            for at_s in (0.0, 0.5, 2.0, 6.0, 10.0):  # < 1: the first pass, not yet converged
                talk = mic.copy()
                at = int(at_s * RATE) + (far.size // 2 if at_s >= 1 else 0)
                talk[at : at + question.size] += question
                cleaned, words, _ = cancel(far, talk)
                end = at + question.size + RATE // 4
                span = slice(max(0, at - pre_roll), end)
                errors.append(wer(QUESTION, recognizer.transcribe(words[span]).text))
                errors_webrtc.append(wer(QUESTION, recognizer.transcribe(cleaned[span]).text))
                clip = as_cut(cleaned, words, at, end, vad, config.vad)
                text = recognizer.transcribe(clip).text if clip is not None else ""
                cut.append(wer(QUESTION, text))
                found = speech_starts(cleaned[max(0, at - RATE) :], vad, config.vad)
                start = max(0, at - RATE) + found[0] if found else at
                # the reply is ducked from the check's start, as the sink does it
                ducked = far.copy()
                ducked[start:] *= DUCK
                talk = room(ducked, delay, level)
                talk[at : at + question.size] += question
                _, words, _ = cancel(ducked, talk)
                ok, after = probe(words, start, recognizer, policy_for(ducked, talk), pre_roll)
                latencies.append((start - at) / RATE + after if ok else None)
            caught = [x for x in latencies if x is not None]
            rows.append(
                {
                    "delay_ms": delay,
                    "echo_db": level,
                    "echo_reduction_db": round(level_db(mic[measured]) - level_db(echo_only), 1),
                    "vad_starts_per_min": round(len(starts) / minutes, 1),
                    "false_barge_ins_per_min": round(false / minutes, 1),
                    "rooms_made_per_min": round(len(made) / minutes, 1),
                    "echo_frames_louder_than_echo_per_min": round(louder / minutes, 1),
                    "barge_ins_caught": f"{len(caught)}/{len(latencies)}",
                    "barge_in_latency_s": round(statistics.median(caught), 2) if caught else None,
                    "double_talk_wer": round(statistics.mean(errors), 3),
                    "double_talk_wer_webrtc_alone": round(statistics.mean(errors_webrtc), 3),
                    "double_talk_wer_as_cut": round(statistics.mean(cut), 3),
                    "double_talk_wer_by_start_s": {
                        str(at_s): [round(e, 2), round(c, 2)]
                        for at_s, e, c in zip((0.0, 0.5, 2.0, 6.0, 10.0), errors, cut, strict=True)
                    },
                    "cancellers_cpu_percent": round(100 * cpu, 2),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return {"assistant_speech_minutes": round(minutes, 2), "rows": rows}


if __name__ == "__main__":
    print(json.dumps(measure(), indent=1))

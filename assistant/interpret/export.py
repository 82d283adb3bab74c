"""A session's captions as a file: SubRip (.srt), WebVTT (.vtt), plain text (.txt), JSON.

Subtitle players are stricter than the session is: the pipeline's segment times may touch,
overlap by a few milliseconds (the next segment opens while the last one's silence is still
being measured), or be zero-length (a segment closed at once). So the cues are laid out
again on a millisecond grid: in time order, each starting no earlier than the one before
ends, each lasting at least a moment, none running into the next. The JSON keeps the
session's own times (rounded to the millisecond), since it is data rather than a display.

Writing goes through a temporary file beside the target, renamed over it once complete,
and the place is checked first with the check audio output already uses, so a failure
names its cause in one line and never leaves half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from assistant.errors import UserFacingError
from assistant.interpret.record import CaptionSegment

Which = Literal["source", "translation", "both"]

# A zero-length segment is shown this long, unless the next cue starts sooner.
MIN_CUE_MS = 1000
EXTENSIONS = (".srt", ".vtt", ".txt", ".json")


class ExportError(UserFacingError):
    """A caption file cannot be written where or as the user asked."""


@dataclass(frozen=True)
class _Cue:
    start: int  # milliseconds
    end: int
    lines: tuple[str, ...]


def _clean(text: str) -> str:
    """One line: a blank line would end an SRT or VTT cue early."""
    return " ".join(text.split())


def _lines(segment: CaptionSegment, which: Which) -> tuple[str, ...]:
    """The cue's lines; () for a segment with nothing to show: nothing said, or (for
    "translation") nothing translated yet."""
    source, translation = _clean(segment.text), _clean(segment.translation)
    if not source:
        return ()
    if which == "source":
        return (source,)
    if which == "translation":
        return (translation,) if translation else ()
    return (source, translation) if translation else (source,)


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _cues(segments: Sequence[CaptionSegment], which: Which) -> list[_Cue]:
    """The segments with something to show, in time order, on non-overlapping times."""
    ordered = sorted(segments, key=lambda s: (s.start, s.index))
    shown = [(s, lines) for s in ordered if (lines := _lines(s, which))]
    cues: list[_Cue] = []
    for position, (segment, lines) in enumerate(shown):
        start = max(_ms(segment.start), cues[-1].end if cues else 0)
        end = _ms(segment.end)
        if end <= start:
            end = start + MIN_CUE_MS
        if position + 1 < len(shown):
            following = _ms(shown[position + 1][0].start)
            if following > start:  # else the next cue is pushed back instead
                end = min(end, following)
        cues.append(_Cue(start, end, lines))
    return cues


def _timestamp(ms: int, separator: str) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


def to_srt(segments: Sequence[CaptionSegment], which: Which = "both") -> str:
    blocks = []
    for number, cue in enumerate(_cues(segments, which), start=1):
        # "-->" inside the text would read as a timing line to some parsers
        text = "\n".join(line.replace("-->", "->") for line in cue.lines)
        times = f"{_timestamp(cue.start, ',')} --> {_timestamp(cue.end, ',')}"
        blocks.append(f"{number}\n{times}\n{text}\n")
    return "\n".join(blocks)


def _vtt_escape(line: str) -> str:
    """WebVTT cue text reads "<" as a tag and "&" as an escape (and so cannot hold "-->")."""
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(segments: Sequence[CaptionSegment], which: Which = "both") -> str:
    blocks = ["WEBVTT\n"]
    for cue in _cues(segments, which):
        text = "\n".join(_vtt_escape(line) for line in cue.lines)
        blocks.append(f"{_timestamp(cue.start, '.')} --> {_timestamp(cue.end, '.')}\n{text}\n")
    return "\n".join(blocks)


def to_text(segments: Sequence[CaptionSegment], which: Which = "both") -> str:
    """A readable transcript: one line per segment, its translation after " — "."""
    lines = [" — ".join(cue.lines) for cue in _cues(segments, which)]
    return "".join(f"{line}\n" for line in lines)


def to_json(
    segments: Sequence[CaptionSegment],
    *,
    language: str,
    target: str,
    timings_ms: dict | None = None,
) -> dict:
    """The session as data: every segment with words, at its own times (to the ms)."""
    rows = [
        {
            "start": round(s.start, 3),
            "end": round(s.end, 3),
            "text": s.text.strip(),
            "translation": s.translation.strip(),
        }
        for s in sorted(segments, key=lambda s: (s.start, s.index))
        if s.text.strip()
    ]
    return {
        "language": language,
        "target": target,
        "segments": rows,
        "timings_ms": dict(timings_ms or {}),
    }


def _render(extension: str, segments, which: Which, language, target, timings_ms) -> str:
    if extension == ".srt":
        return to_srt(segments, which)
    if extension == ".vtt":
        return to_vtt(segments, which)
    if extension == ".txt":
        return to_text(segments, which)
    data = to_json(segments, language=language, target=target, timings_ms=timings_ms)
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def check_export_path(path: str | Path) -> Path:
    """Refuse a name or place the export cannot use, before the session's end if asked
    early: the extension picks the format; the folder must exist and take a new file."""
    from assistant.audio.output_file import check_place
    from assistant.errors import AudioOutputError

    path = Path(path)
    if path.is_dir():
        raise ExportError(f"cannot write {path}: it is a folder")
    if path.suffix.lower() not in EXTENSIONS:
        raise ExportError(
            f"cannot write {path}: name the file with one of {', '.join(EXTENSIONS)} "
            "(the extension sets the format)"
        )
    try:  # the audio output's check: a real temporary file made and removed there
        check_place(path)
    except AudioOutputError as exc:
        raise ExportError(str(exc)) from None
    return path


def write_export(
    path: str | Path,
    segments: Sequence[CaptionSegment],
    which: Which = "both",
    *,
    language: str = "",
    target: str = "",
    timings_ms: dict | None = None,
) -> None:
    """Write the captions in the format the extension names, whole or not at all
    (``language``, ``target`` and ``timings_ms`` go into a .json only)."""
    path = check_export_path(path)
    text = _render(path.suffix.lower(), segments, which, language, target, timings_ms)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as file:
            file.write(text)
        os.replace(temporary, path)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)

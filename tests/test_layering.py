"""``assistant/`` is the engine: it never imports the UI or Qt, not even inside a function,
so the headless commands run where PySide6 is missing and the engine can be reused without
a window. The ``voice-assistant`` entry point (``ui.launcher``) joins the two."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QT = {"PySide6", "shiboken6"}
FORBIDDEN = {"ui", *QT}
VOICE_ASSISTANT = Path(sys.executable).with_name("voice-assistant")


def imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module a piece of code imports, wherever the import statement sits, and the
    names passed as literals to importlib.import_module or __import__."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if (
                name in ("import_module", "__import__")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                found.append((node.lineno, first.value))
    return found


def forbidden_imports(source: str) -> list[tuple[int, str]]:
    return [
        (line, name)
        for line, name in imported_names(ast.parse(source))
        if name.split(".")[0] in FORBIDDEN
    ]


def test_the_scanner_sees_lazy_imports():
    source = """
import os
from assistant.config import AssistantConfig

def run(config):
    if config:
        from ui.app import run_app
    import PySide6.QtCore as core
    importlib.import_module("shiboken6")
    __import__("ui")
    importlib.import_module("uikit")
    from . import window
"""
    assert sorted(forbidden_imports(source)) == [
        (7, "ui.app"),
        (8, "PySide6.QtCore"),
        (9, "shiboken6"),
        (10, "ui"),
    ]


def test_no_module_under_assistant_imports_the_ui_or_qt():
    modules = sorted((ROOT / "assistant").rglob("*.py"))
    assert len(modules) > 20, modules  # the scan found the package
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: imports {name}"
        for path in modules
        for line, name in forbidden_imports(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, "\n".join(offenders)


def test_the_headless_command_line_loads_no_qt():
    code = (
        "import sys, ui.launcher, assistant.cli, assistant.commands.doctor, "
        "assistant.commands.transcribe, assistant.commands.say\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(QT)!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout


def without_display() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        env.pop(key, None)
    return env


def test_the_command_without_a_display_says_so_and_names_the_headless_commands():
    result = subprocess.run(
        [str(VOICE_ASSISTANT)], capture_output=True, text=True, env=without_display(), timeout=60
    )
    assert result.returncode == 2
    first, hint = result.stderr.splitlines()
    assert first == "voice-assistant: no display found, so the desktop window cannot open."
    assert hint.startswith("headless commands: voice-assistant listen | chat --input")
    assert "Traceback" not in result.stderr


def test_without_pyside6_the_window_says_why_in_one_line():
    # None in sys.modules makes `import PySide6` fail as if it were not installed.
    code = (
        "import sys\nsys.modules['PySide6'] = None\n"
        "from ui.launcher import main\nsys.exit(main([]))"
    )
    env = {**without_display(), "QT_QPA_PLATFORM": "offscreen"}  # a display, so Qt is tried
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 2
    first, hint = result.stderr.splitlines()
    assert first.startswith("voice-assistant: the desktop window cannot start (")
    assert "PySide6" in first and hint.startswith("headless commands:")
    assert "Traceback" not in result.stderr


def test_the_engine_alone_has_no_window_to_open():
    """``python -m assistant`` is the engine's command line: no window comes with it."""
    result = subprocess.run(
        [sys.executable, "-m", "assistant"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 2
    assert "no desktop window from this entry point" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_entry_point_hands_the_window_to_the_command_line(monkeypatch):
    from ui import launcher

    opened = []
    monkeypatch.setattr(launcher, "open_window", lambda config: opened.append(config) or 0)
    assert launcher.main(["--device", "cpu"]) == 0
    assert len(opened) == 1 and opened[0].asr.device == "cpu"

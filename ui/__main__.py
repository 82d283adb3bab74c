"""``python -m ui``: the window with the user's config, the microphone and the speaker."""

import sys

from assistant.config import AssistantConfig
from assistant.errors import UserFacingError
from ui.app import run_app

try:
    config = AssistantConfig.load()
except UserFacingError as exc:
    print(f"voice-assistant: {exc}", file=sys.stderr)
    raise SystemExit(2) from None
raise SystemExit(run_app(config))

"""Where the API key for an OpenAI-compatible server comes from.

Only two places, so that a key never shows in ``ps``, shell history or a config file
that gets shared: the environment variable ``VOICE_ASSISTANT_API_KEY``, else the OS
keyring, service ``voice-assistant``, user name the server's ``host:port`` (the port
spelled out even where it is the scheme's default), e.g.::

    keyring set voice-assistant 127.0.0.1:8000

A machine without a usable keyring (headless Linux has none) simply has no key: a local
server rarely wants one, and a server that does answers 401, which names both places.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import urlsplit

ENV_VAR = "VOICE_ASSISTANT_API_KEY"
KEYRING_SERVICE = "voice-assistant"

log = logging.getLogger(__name__)


def keyring_user(url: str) -> str:
    """The keyring user name for the server at ``url``: its ``host:port``."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address keeps its brackets, as in a URL
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: the URL is wrong, not the key
        port = None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return f"{host}:{port}"


def api_key(url: str) -> str | None:
    """The key for the server at ``url``, or None when neither place has one."""
    key = os.environ.get(ENV_VAR, "").strip()
    if key:
        return key
    try:
        import keyring

        key = keyring.get_password(KEYRING_SERVICE, keyring_user(url))
    except Exception as exc:  # no backend, a locked or absent D-Bus service: no key
        log.debug("no API key from the keyring: %s", type(exc).__name__)
        return None
    return (key or "").strip() or None

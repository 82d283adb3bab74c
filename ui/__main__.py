"""``python -m ui``: the same as the ``voice-assistant`` command."""

from ui.launcher import main

raise SystemExit(main())

"""Errors a user can act on.

Every error that reaches the command line or the window as a message is a
``UserFacingError``: its text names what went wrong and how to fix it, so the CLI
can print one line and exit with status 2 instead of a traceback.
"""


class UserFacingError(Exception):
    """An error whose message is meant for the user, not a developer."""


class AudioInputError(UserFacingError):
    """An audio file or device could not be read."""


class AudioDeviceError(UserFacingError):
    """No usable audio device, or the device went away."""


class ModelError(UserFacingError):
    """A model is missing, incomplete, corrupt or fails its checksum."""


class ConfigError(UserFacingError):
    """A setting has a value the assistant cannot use."""


class LlmError(UserFacingError):
    """The chat model could not answer: a server down, refusing or cut off mid-reply."""


class AudioOutputError(UserFacingError):
    """An audio file cannot be written where or as the user asked."""

"""Base class for errors whose message is complete enough to show the user as one line."""

__all__ = ["UserFacingError", "MissingToolError"]


class UserFacingError(RuntimeError):
    """Printed by the CLI as ``s3prl-emoaware: error: <message>`` (exit status 2)."""


class MissingToolError(UserFacingError):
    """An external program (e.g. espeak-ng) is not installed."""

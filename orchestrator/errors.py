"""Errors a user can cause: the CLI prints the message (one sentence) and exits 2."""


class UserError(Exception):
    """Bad input; the message names what to change."""

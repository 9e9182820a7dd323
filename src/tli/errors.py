"""User-facing errors.

Anything a user can fix (a bad path, a malformed lexicon, an option out of range) is raised as a
:class:`TliError`. The CLI prints its message as one line and exits non-zero; tracebacks are kept
for bugs (or for ``--debug``).
"""


class TliError(Exception):
    """An error caused by the user's input, with a message that says what to do."""


class LexiconError(TliError):
    """A lexicon file that cannot be read or fails validation (message names file and line)."""


class ModelLoadError(TliError):
    """A model, tokenizer or adapter that cannot be loaded (message names the path or id)."""


class ConfigError(TliError):
    """An option with a value that cannot work (message names the option and the value)."""

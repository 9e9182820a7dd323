"""User-facing errors.

Anything a user can fix (a bad path, a malformed lexicon, an option out of range) is raised as a
:class:`TliError` of its kind. The CLI prints its message as one line and exits non-zero; tracebacks are
kept for bugs (or for ``--debug``).

Kinds (catch the kind, or :class:`TliError` for all):

- :class:`ConfigError` — an option, argument or config file value that cannot work;
- :class:`DataError` — input data or a run directory that cannot be read or used (:class:`LexiconError`,
  and the task, TREC and vocabulary errors of their modules, are data errors);
- :class:`ModelLoadError` — a model, tokenizer or adapter that cannot be loaded or does not fit;
- :class:`TrainingError` — training that cannot go on (a non-finite loss).
"""


class TliError(Exception):
    """An error caused by the user's input, with a message that says what to do."""


class ConfigError(TliError):
    """An option with a value that cannot work (message names the option and the value)."""


class DataError(TliError):
    """Input data or a run directory that cannot be used (message names the file, and line where it has one)."""


class LexiconError(DataError):
    """A lexicon file that cannot be read or fails validation (message names file and line)."""


class ModelLoadError(TliError):
    """A model, tokenizer or adapter that cannot be loaded (message names the path or id)."""


class TrainingError(TliError):
    """Training that cannot continue (message says where it stopped and where the last checkpoint is)."""


def yaml_problem(exc: Exception) -> str:
    """A YAML parser error as one line: where (``line N``) and what, without the parser's multi-line context."""
    mark = getattr(exc, "problem_mark", None)
    where = f" line {mark.line + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{where}: not valid YAML ({' '.join(str(problem).split())})"

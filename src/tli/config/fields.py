"""How an option is declared and checked: :func:`option` (a dataclass field whose ``help`` is its ``--help``
text) and :class:`Problems` (every invalid value of a config, raised once), with the small helpers the checks
share (flag spelling, comma-separated lists)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import field
from typing import Any

from tli.errors import ConfigError


def option(default: Any = dataclasses.MISSING, help: str = "", **metadata: Any) -> Any:
    """A dataclass field whose ``help`` becomes the command line's ``--help`` text."""
    if isinstance(default, list):
        value = list(default)
        return field(default_factory=lambda: list(value), metadata={"help": help, **metadata})
    return field(default=default, metadata={"help": help, **metadata})


class Problems:
    """Collects every invalid option of a config, then raises once (all problems in one message)."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.items.append(message)

    def choice(self, name: str, value: Any, choices: Iterable[Any]) -> None:
        choices = tuple(choices)
        self.check(
            value in choices, f"--{_flag(name)} {value!r} is not one of {', '.join(map(str, choices))}"
        )

    def at_least(self, name: str, value: Any, low: float) -> None:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        self.check(number and value >= low, f"--{_flag(name)} must be >= {low}, got {value!r}")

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError("; ".join(self.items))


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _split_commas(values: list[Any] | None) -> list[Any] | None:
    """``["q_proj,v_proj"]`` → ``["q_proj", "v_proj"]``: list options accept commas as well as spaces."""
    if values is None:
        return None
    out: list[Any] = []
    for value in values:
        if isinstance(value, str):
            out.extend(part.strip() for part in value.split(",") if part.strip())
        else:
            out.append(value)
    return out


def _int_list(name: str, values: list[Any] | None, problems: Problems) -> list[int] | None:
    values = _split_commas(values)
    if values is None:
        return None
    try:
        return [int(v) for v in values]
    except (TypeError, ValueError):
        problems.items.append(f"--{_flag(name)} {values!r}: expected whole numbers, e.g. 0,1")
        return None

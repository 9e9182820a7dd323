"""The command line: each command's argument parser, generated from its options class with transformers'
``HfArgumentParser`` (positional fields, dashed flags, ``--no-…`` negations), the ``--help`` formatter, and
:func:`parse_command` (YAML from ``--config`` first, flags override).

In-function import: ``transformers``' ``HfArgumentParser``, only when a command line is parsed.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import re
import types
from typing import Any

from tli.config.commands import COMMANDS
from tli.config.fields import _flag
from tli.config.files import load_options_file, options_for

_BOOL_METAVAR = "BOOL"
"""Metavar of boolean flags, which take an optional ``true``/``false``; help and usage show the bare flag."""
_STATES_DEFAULT = re.compile(r"\(default[:\s]|\bdefault:")


def format_default(value: Any) -> str | None:
    """A default as ``--help`` shows it, or None when there is nothing worth showing (unset, off, empty).

    Floats get four significant digits (``63/686`` → ``0.09184``, not ``0.09183673469387756``); lists are
    comma separated, as the flags take them.
    """
    if value is None or value is False or value is argparse.SUPPRESS or value == []:
        return None
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


class HelpFormatter(argparse.HelpFormatter):
    """``--help`` as the docs write it: dashed flags only (``--device-map``; ``--device_map`` still parses),
    boolean flags without their optional value, and each default once — appended only where the help text
    does not state it already, never for an unset (None) or off (False) value or a ``--no-…`` negation."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.option_strings and not isinstance(action, argparse._StoreFalseAction):
            shown = format_default(action.default)
            if shown is not None and not _STATES_DEFAULT.search(text):
                text += f" (default: {shown.replace('%', '%%')})"
        return text

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings:
            return super()._format_action_invocation(action)
        flags = _shown_flags(action.option_strings)
        if action.nargs == 0 or action.metavar == _BOOL_METAVAR:
            return ", ".join(flags)
        args = self._format_args(action, self._get_default_metavar_for_optional(action))
        return ", ".join(f"{flag} {args}" for flag in flags)

    def _format_usage(self, usage, actions, groups, prefix) -> str:
        text = super()._format_usage(usage, actions, groups, prefix)
        return text.replace(f" [{_BOOL_METAVAR}]", "")


def _shown_flags(option_strings: list[str]) -> list[str]:
    """The flags ``--help`` shows: the dashed spellings (underscored aliases parse but are not listed)."""
    dashed = [s for s in option_strings if not (s.startswith("--") and "_" in s)]
    return dashed or list(option_strings)


def _hf_argument_parser():
    from transformers import HfArgumentParser

    class OptionParser(HfArgumentParser):
        """HfArgumentParser with positional fields (``metadata={"positional": True}``), dashed flags first
        (usage lines name ``--device-map``, as the docs do), and ``--no-…`` negations of boolean options that
        default to true with their own help (``metadata={"negative_help": …}``)."""

        @staticmethod
        def _parse_dataclass_field(parser, field):
            if field.metadata.get("positional"):
                kwargs = {"help": field.metadata.get("help", ""), "type": str}
                if field.default is not dataclasses.MISSING:
                    kwargs.update(nargs="?", default=field.default)
                parser.add_argument(field.name, **kwargs)
                return
            before = len(parser._actions)
            metadata = dict(field.metadata)
            negative = metadata.pop("negative_help", None)
            stripped = copy.copy(field)
            stripped.metadata = types.MappingProxyType(metadata)
            HfArgumentParser._parse_dataclass_field(parser, stripped)
            for action in parser._actions[before:]:
                action.option_strings.sort(key=lambda s: s.startswith("--") and "_" in s)  # dashed first
                if action.nargs == "+":  # lists: "0,1" and "0 1" both work; __post_init__ splits and converts
                    action.type = str
                if isinstance(action, argparse._StoreFalseAction):
                    action.help = negative or f"turn --{_flag(field.name)} off"
                elif action.nargs == "?" and action.const is True:
                    action.metavar = _BOOL_METAVAR

    return OptionParser


def build_parser(command: str) -> argparse.ArgumentParser:
    """The ``tli <command>`` argument parser, generated from the command's config class."""
    config_class = COMMANDS[command]
    parser = _hf_argument_parser()(
        config_class,
        prog=f"tli {command}",
        description=(config_class.__doc__ or "").strip().split("\n")[0].split(": ", 1)[-1],
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--config", default=None, help="YAML of these options (flags override it), or a shipped name"
    )
    return parser


def parse_command(command: str, argv: list[str]) -> Any:
    """Parse ``tli <command> ARGV`` into its config object (YAML from ``--config`` first, flags override)."""
    parser = build_parser(command)
    namespace, _ = parser.parse_known_args(argv)
    if namespace.config:
        parser.set_defaults(**options_for(command, load_options_file(namespace.config)))
    values = vars(parser.parse_args(argv))
    values.pop("config", None)
    names = {f.name for f in dataclasses.fields(COMMANDS[command])}
    return COMMANDS[command](**{k: v for k, v in values.items() if k in names})

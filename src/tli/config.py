"""YAML config files: option names as keys, for any ``tli`` command that takes ``--model``.

Shipped configs live in ``tli/configs/`` and can be named directly (``--config published``); each file's
header shows the command that runs it. Flags on the command line override the file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tli.errors import TliError


def shipped_configs() -> dict[str, Path]:
    """Configs shipped with tli (``tli/configs/*.yaml``), by name."""
    from importlib.resources import files

    return {
        p.name.removesuffix(".yaml"): Path(str(p))
        for p in files("tli.configs").iterdir()
        if p.name.endswith(".yaml")
    }


def load_config_options(spec: str, parser: argparse.ArgumentParser) -> dict:
    """Options from a YAML config for one subcommand's parser; unknown keys are an error naming them.

    Lists become comma-separated strings (``target_modules: [q_proj, v_proj]``), as the flags take them.
    """
    import yaml

    path = Path(spec)
    if not path.is_file():
        path = shipped_configs().get(spec, path)
    if not path.is_file():
        raise TliError(
            f"--config {spec}: no such file or shipped config ({', '.join(sorted(shipped_configs()))})"
        )
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise TliError(f"--config {path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    if not isinstance(values, dict):
        raise TliError(f"--config {path}: expected a mapping of option: value")
    known = {a.dest for a in parser._actions if a.dest not in ("help", "config", "func")}
    options = {str(k).replace("-", "_"): v for k, v in values.items()}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TliError(
            f"--config {path}: unknown option(s) {', '.join(unknown)} for 'tli {parser.prog.split()[-1]}' "
            f"(known: {', '.join(sorted(known))})"
        )
    return {k: ",".join(map(str, v)) if isinstance(v, list) else v for k, v in options.items()}

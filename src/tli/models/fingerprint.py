"""A model directory's identity for result files: the SHA-256 of its weights (metadata above 2 GiB)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tli.io import sha256_file, sha256_text

_CONTENT_HASH_LIMIT = 2 << 30  # hash weight bytes up to 2 GiB; above, hash metadata (see fingerprint)


def fingerprint_dir(path: Path) -> dict[str, Any]:
    """SHA-256 of a local checkpoint: config + weight bytes (``content``) up to 2 GiB of weights,
    else config + weight file names, sizes and safetensors headers (``metadata``), which changes with
    any re-export but does not read 140 GB of a 70B model."""
    weight_files = sorted(
        p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".pt") and p.is_file()
    )
    parts = [(path / "config.json").read_text(encoding="utf-8")]
    total = sum(p.stat().st_size for p in weight_files)
    kind = "content" if total <= _CONTENT_HASH_LIMIT else "metadata"
    for p in weight_files:
        if kind == "content":
            parts.append(f"{p.name}:{sha256_file(p)}")
        else:
            with open(p, "rb") as handle:
                parts.append(f"{p.name}:{p.stat().st_size}:{handle.read(1 << 20).hex()}")
    return {"sha256": sha256_text("\n".join(parts)), "kind": kind}

"""tli — cross-lingual lexical alignment in LLMs.

The Python API mirrors the CLI::

    from tli import scan
    result = scan(lexicon="pairs.csv", pooling="mean-no-special", out="runs/scan")
    result.selected_layer, result.layers[result.selected_layer]["gap"]

The functions are bound here after their modules are imported, so ``tli.scan`` is the function (the
module stays reachable as ``sys.modules["tli.scan"]`` or ``import tli.scan as scan_module``).
"""

from tli.lexicon import Lexicon, Pair, default_lexicon, read_lexicon, write_lexicon
from tli.models import LoadedModel, load_model
from tli.scan import ScanConfig, ScanResult, scan

__all__ = [
    "Lexicon",
    "LoadedModel",
    "Pair",
    "ScanConfig",
    "ScanResult",
    "default_lexicon",
    "load_model",
    "read_lexicon",
    "scan",
    "write_lexicon",
]

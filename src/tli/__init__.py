"""tli — cross-lingual lexical alignment in LLMs.

The Python API mirrors the CLI::

    import tli
    study = tli.run(out="runs/study")                          # scan → train → evaluate → report
    result = tli.scan(lexicon="pairs.csv", pooling="mean-no-special", out="runs/scan")
    trained = tli.train(lexicon="pairs.csv", target_layer=2, out="runs/train")
    report = tli.evaluate(trained.adapter, out="runs/eval")

The functions are bound here after their modules are imported, so ``tli.scan`` is the function (the
module stays reachable as ``importlib.import_module("tli.scan")``).
"""

from tli.evaluate import evaluate
from tli.lexicon import Lexicon, Pair, default_lexicon, read_lexicon, write_lexicon
from tli.models import LoadedModel, load_model
from tli.pipeline import run
from tli.scan import ScanConfig, ScanResult, scan
from tli.stats import paired_stats, stats_from_csv
from tli.train import TrainConfig, TrainResult, train

__all__ = [
    "Lexicon",
    "LoadedModel",
    "Pair",
    "ScanConfig",
    "ScanResult",
    "TrainConfig",
    "TrainResult",
    "default_lexicon",
    "evaluate",
    "load_model",
    "paired_stats",
    "read_lexicon",
    "run",
    "scan",
    "stats_from_csv",
    "train",
    "write_lexicon",
]

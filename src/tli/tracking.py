"""Experiment tracking: MLflow (a local SQLite store by default, or a server URI) and TensorBoard.

Both are optional dependencies (``pip install 'tli[tracking]'``); asking for one that is not installed is a
one-line error. ``tli compare`` logs one MLflow run per cell (parameters, metrics, cost, the predictions
file) under a parent run holding the report; ``tli run`` logs one run with its claims. TensorBoard gets the
same scalars under ``OUT/tensorboard``; ``tli train`` writes its step metrics there too when TensorBoard is
installed (:func:`tensorboard_writer`, the one place a TensorBoard writer is made).

In-function imports: ``mlflow`` and ``torch.utils.tensorboard`` (the optional ``tracking`` extra), only when
asked for.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tli.errors import ConfigError

TRACKERS = ("mlflow", "tensorboard")


def _flat(prefix: str, value: Any, out: dict[str, float]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flat(f"{prefix}.{key}" if prefix else str(key), inner, out)
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        out[prefix] = float(value)


def tensorboard_writer(directory: Path, *, required: bool) -> Any:
    """A TensorBoard ``SummaryWriter`` logging to ``directory``; when TensorBoard is not installed, None
    (``required=False``: the caller has a complete log of its own) or a one-line error (``required=True``).

    Raises:
        ConfigError: ``required`` and TensorBoard is not installed.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        if not required:
            return None
        raise ConfigError("--track tensorboard needs TensorBoard: pip install 'tli[tracking]'") from exc
    return SummaryWriter(str(directory))


class MLflowTracker:
    """Logs to MLflow; ``uri`` None = ``sqlite:///OUT/mlflow.db`` (a local store, no server)."""

    def __init__(self, out: Path, name: str, params: dict[str, Any], uri: str | None = None) -> None:
        try:
            import mlflow
        except ImportError as exc:
            raise ConfigError(
                "--track mlflow needs MLflow: pip install 'tli[tracking]' (or pip install mlflow)"
            ) from exc
        self.mlflow = mlflow
        self.uri = uri or f"sqlite:///{Path(out).resolve() / 'mlflow.db'}"
        mlflow.set_tracking_uri(self.uri)
        if uri is None and mlflow.get_experiment_by_name(name) is None:
            # With a SQLite store MLflow would put artifacts in ./mlruns of the working directory: keep them
            # in the run directory instead.
            mlflow.create_experiment(name, artifact_location=(Path(out).resolve() / "mlartifacts").as_uri())
        mlflow.set_experiment(name)
        self.parent = mlflow.start_run(run_name=name)
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})

    def log_cell(self, cell) -> None:
        """One nested run per cell: its identity, every metric score and CI, its cost, its predictions."""
        record = cell.to_dict() if hasattr(cell, "to_dict") else cell
        name = f"{record['model']}/{record['strategy']}/{record['task']}-{record['language']}/seed-{record['seed']}"
        with self.mlflow.start_run(run_name=name, nested=True):
            self.mlflow.log_params({k: record[k] for k in ("model", "strategy", "task", "language", "seed")})
            metrics: dict[str, float] = {}
            _flat("", record.get("metrics", {}), metrics)
            _flat("cost", record.get("cost", {}), metrics)
            self.mlflow.log_metrics({k.replace("@", "_at_"): v for k, v in metrics.items()})
            if record.get("predictions") and Path(record["predictions"]).is_file():
                self.mlflow.log_artifact(record["predictions"])

    def log_results(self, metrics: dict[str, float], files: list[Path]) -> None:
        self.mlflow.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)})
        for path in files:
            if Path(path).is_file():
                self.mlflow.log_artifact(str(path))

    def close(self) -> None:
        self.mlflow.end_run()


class TensorBoardTracker:
    """Scalars in ``OUT/tensorboard`` (``tensorboard --logdir OUT/tensorboard``)."""

    def __init__(self, out: Path, name: str, params: dict[str, Any], uri: str | None = None) -> None:
        self.writer = tensorboard_writer(Path(out) / "tensorboard", required=True)
        self.writer.add_text("experiment", "\n".join(f"{k}: {v}" for k, v in params.items()))
        self.step = 0

    def log_cell(self, cell) -> None:
        record = cell.to_dict() if hasattr(cell, "to_dict") else cell
        tag = f"{record['task']}-{record['language']}/{record['strategy']}"
        metrics: dict[str, float] = {}
        _flat("", {m: v.get("score") for m, v in record.get("metrics", {}).items()}, metrics)
        for key, value in metrics.items():
            self.writer.add_scalar(f"{tag}/{key}", value, record["seed"])

    def log_results(self, metrics: dict[str, float], files: list[Path]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, 0)

    def close(self) -> None:
        self.writer.close()


def make_tracker(kind: str | None, out: Path, name: str, params: dict[str, Any], uri: str | None = None):
    """A tracker for ``--track`` (None = no tracking)."""
    if kind is None or kind == "none":
        return None
    if kind not in TRACKERS:
        raise ConfigError(f"--track {kind!r} is not one of {', '.join(TRACKERS)}")
    return {"mlflow": MLflowTracker, "tensorboard": TensorBoardTracker}[kind](out, name, params, uri)

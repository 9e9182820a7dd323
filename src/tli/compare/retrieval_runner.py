"""Retrieval cells of ``tli compare``: BM25, fusion and trained dense retrievers beside the strategies.

Each retrieval cell has a ``system`` naming what ranked:

- ``dense:<strategy>``: the strategy's LLM, pooled hidden states (scored by the task, in
  :meth:`tli.compare.runner.Runner.score`);
- ``bm25``: the lexical baseline, one cell per (task, language) (``model``, ``strategy`` and ``seed`` null);
- ``fusion:bm25+<dense system>``: reciprocal rank fusion of BM25 with a dense system, beside that cell;
- ``dense:<condition>``: a sentence-transformers bi-encoder per (encoder, condition, seed): ``zero-shot``
  (no training, seed null), ``direct-transfer`` (English pairs), ``synthetic`` (tli's synthetic pairs),
  ``mix`` (both) — the same steps, seed, batch and schedule.

Every retrieval cell writes ``run.trec`` and ``qrels.trec`` (TREC formats) beside ``predictions.jsonl``, and
``cell.json`` last, so any figure can be recomputed by trec_eval, ranx or ir_measures and an interrupted run
resumes cell by cell. Layout under ``OUT/runs/``::

    _bm25/<task>-<lang>/                                       BM25
    <model>/<strategy>/seed-<k>/<task>-<lang>/fusion-bm25/     fusion of BM25 with dense:<strategy>
    <encoder>/dense-<condition>/seed-<k>/{encoder/, train.json, <task>-<lang>/[fusion-bm25/]}
    OUT/synthetic/{synthetic.jsonl, synthetic.rejected.jsonl, synthetic.meta.json}
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from tli.compare.cell_store import cell_dir, failed_cell, fingerprint, slug, unit_dir, write_cell
from tli.compare.retrieval_settings import load_ref, pairs_of
from tli.compare.schema import Cell, RetrievalSettings, task_settings
from tli.errors import TliError
from tli.io import atomic_write_json, replace_dir_atomically
from tli.models import DEFAULT_MODEL, default_gguf_path, gguf_to_cached_dir, load_model, resolve_device
from tli.resources import Measured
from tli.retrieval import rank  # called as rank.X, so tests can replace a system
from tli.retrieval.biencoder import SentenceEncoder, TrainingPair, fit_biencoder, load_biencoder
from tli.retrieval.encode import model_state_fingerprint
from tli.retrieval.trec import read_run
from tli.tasks.retrieval.base import score_ranking
from tli.tasks.retrieval.synthetic import SourcePassage, SourceQuery, generate_synthetic


def read_trec_run(path: str | Path) -> dict[str, dict[str, float]]:
    """A run file a cell wrote (empty when the system retrieved nothing for any query)."""
    return read_run(path, allow_empty=True)


# --------------------------------------------------------------------------------------------------
# Running BM25, fusion and the dense-retriever conditions
# --------------------------------------------------------------------------------------------------


class RetrievalRunner:
    """The retrieval systems that are not a strategy's LLM, for one experiment run (see module docstring)."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.experiment = runner.experiment
        self.settings: RetrievalSettings = self.experiment.retrieval
        self.out: Path = runner.out
        self._synthetic: list[dict[str, Any]] | None = None

    @property
    def keys(self) -> list[tuple[str, str]]:
        return self.experiment.retrieval_task_languages()

    def config(self, task: str):
        return self.experiment.tasks[task]

    # -- BM25 ----------------------------------------------------------------------------------------

    def bm25_dir(self, task: str, language: str) -> Path:
        return self.out / "runs" / "_bm25" / f"{task}-{language}"

    def bm25_cells(self) -> list[Cell]:
        if "bm25" not in self.settings.systems:
            return []
        return [self.bm25_cell(task, language) for task, language in self.keys]

    def bm25_cell(self, task: str, language: str) -> Cell:
        where = self.bm25_dir(task, language)
        config = self.config(task)
        settings = {
            "system": "bm25",
            "task": task,
            "language": language,
            "task_options": task_settings(config),
            "bm25": dataclasses.asdict(self.settings.bm25),
        }
        if done := self.runner.recomputed.reusable(where, settings, f"bm25 {task}-{language}"):
            return done
        try:
            data = self.runner.examples(task, language)
            with Measured() as measured:
                ranking = rank.bm25_ranking(
                    data,
                    k1=self.settings.bm25.k1,
                    b=self.settings.bm25.b,
                    depth=config.depth,
                    with_title=config.with_title,
                )
            result = score_ranking(
                task, data, ranking, bootstrap_samples=config.bootstrap_samples, seed=config.seed
            )
        except (TliError, RuntimeError, ValueError, OSError) as exc:
            return failed_cell(None, None, None, task, language, "bm25", exc)
        cost = {
            "trainable_parameters": 0,
            "train_seconds": 0.0,
            "evaluate_seconds": measured.seconds,
            "peak_memory_mb": measured.peak_rss_mb,
            "tokens_seen": 0,
            "steps": 0,
        }
        return write_cell(
            where,
            result,
            task=task,
            language=language,
            model=None,
            strategy=None,
            seed=None,
            system="bm25",
            cost=cost,
            tracker=self.runner.tracker,
            settings=settings,
        )

    # -- fusion ----------------------------------------------------------------------------------------

    def fusion_cell(self, dense: Cell, bm25: Cell | None) -> Cell | None:
        """RRF of BM25 with a finished dense cell, written beside it (None when fusion is off)."""
        if "fusion" not in self.settings.systems or dense.status != "done" or not dense.run:
            return None
        if not self.settings.fusion.fuses(dense.system):
            return None
        system = f"fusion:bm25+{dense.system}"
        where = Path(dense.run).parent / "fusion-bm25"
        settings = {
            "system": system,
            "dense": dense.fingerprint,
            "bm25": bm25.fingerprint if bm25 is not None else None,
            "k": self.settings.fusion.k,
            "task_options": task_settings(self.config(dense.task)),
        }
        if done := self.runner.recomputed.reusable(
            where, settings, f"{system} {dense.task}-{dense.language}"
        ):
            return done
        if bm25 is None or bm25.status != "done":
            return failed_cell(
                dense.model,
                dense.strategy,
                dense.seed,
                dense.task,
                dense.language,
                system,
                TliError("BM25 failed, so nothing to fuse"),
            )
        config = self.config(dense.task)
        try:
            data = self.runner.examples(dense.task, dense.language)
            parts = [rank.Ranking(read_trec_run(bm25.run)), rank.Ranking(read_trec_run(dense.run))]
            ranking = rank.fused_ranking(
                parts, ["bm25", dense.system], k=self.settings.fusion.k, depth=config.depth
            )
            result = score_ranking(
                dense.task, data, ranking, bootstrap_samples=config.bootstrap_samples, seed=config.seed
            )
        except (TliError, RuntimeError, ValueError, OSError) as exc:
            return failed_cell(
                dense.model, dense.strategy, dense.seed, dense.task, dense.language, system, exc
            )
        cost = {**dense.cost, "evaluate_seconds": ranking.details["seconds"]}
        return write_cell(
            where,
            result,
            task=dense.task,
            language=dense.language,
            model=dense.model,
            strategy=dense.strategy,
            seed=dense.seed,
            system=system,
            cost=cost,
            tracker=self.runner.tracker,
            settings=settings,
        )

    # -- dense-retriever conditions --------------------------------------------------------------------

    def encoders(self) -> list[str]:
        """Model labels of the bi-encoders: each experiment model (``encoder: model``) or the encoder path."""
        return self.settings.dense_retriever.encoders(self.experiment.models)

    def condition_cells(self) -> list[Cell]:
        spec = self.settings.dense_retriever
        if spec is None:
            return []
        cells: list[Cell] = []
        for encoder in self.encoders():
            for condition in spec.conditions:
                seeds = [None] if condition == "zero-shot" else list(self.experiment.seeds)
                for seed in seeds:
                    cells += self.condition_unit(encoder, condition, seed)
        return cells

    def condition_unit(self, encoder: str, condition: str, seed: int | None) -> list[Cell]:
        """Train (or reload) one bi-encoder and score it on every retrieval (task, language)."""
        system = f"dense:{condition}"
        unit = unit_dir(self.out, encoder, f"dense-{condition}", seed if seed is not None else 0)
        if seed is None:
            unit = unit.parent / "no-training"
        self.check_condition_unit(unit, encoder, condition, seed)
        done = {}
        for key in self.keys:
            what = f"{slug(encoder)}/dense-{condition}/seed-{seed} {key[0]}-{key[1]}"
            settings = self.condition_cell_settings(encoder, condition, seed, *key)
            if cell := self.runner.recomputed.reusable(cell_dir(unit, *key), settings, what):
                done[key] = cell
        if len(done) == len(self.keys):
            return [done[key] for key in self.keys]
        try:
            model, cost = self.prepare_biencoder(encoder, condition, seed, unit)
        except (TliError, RuntimeError, ValueError, OSError) as exc:
            return [done.get(k) or failed_cell(encoder, None, seed, *k, system, exc) for k in self.keys]
        cells = []
        for key in self.keys:
            cells.append(
                done.get(key) or self.score_biencoder(model, encoder, condition, seed, unit, key, cost)
            )
        return cells

    def condition_settings(self, encoder: str, condition: str, seed: int | None) -> dict[str, Any]:
        """What determines a dense-retriever condition's encoder: encoder, condition, seed, options, its data."""
        spec = self.settings.dense_retriever
        return {
            "encoder": encoder,
            "condition": condition,
            "seed": seed,
            "options": spec.options.to_dict(),
            "english": spec.english.describe() if spec.english is not None else None,
            "passages": spec.synthetic_passages.describe() if spec.synthetic_passages is not None else None,
            "synthetic": dataclasses.asdict(spec.synthetic) if spec.synthetic is not None else None,
            "dtype": self.experiment.dtype,
            "device": self.experiment.device,
        }

    def condition_cell_settings(
        self, encoder: str, condition: str, seed: int | None, task: str, language: str
    ) -> dict[str, Any]:
        return {
            **self.condition_settings(encoder, condition, seed),
            "task": task,
            "language": language,
            "task_options": task_settings(self.config(task)),
        }

    def check_condition_unit(self, unit: Path, encoder: str, condition: str, seed: int | None) -> None:
        """A bi-encoder trained with other settings is trained again (its encoder and train.json removed)."""
        self.runner.recomputed.check_unit(
            unit,
            self.condition_settings(encoder, condition, seed),
            f"{slug(encoder)}/dense-{condition}/seed-{seed}",
            stale=("encoder",),
        )

    def location(self, encoder: str) -> str:
        """A local directory (or hub id) sentence-transformers can read for ``encoder``."""
        if self.settings.dense_retriever.options.encoder != "model" or Path(encoder).is_dir():
            return encoder
        if encoder == DEFAULT_MODEL or encoder.endswith(".gguf"):
            gguf = default_gguf_path() if encoder == DEFAULT_MODEL else Path(encoder).expanduser()
            return str(gguf_to_cached_dir(gguf)[0])  # the dequantised HF directory tli caches
        return encoder  # a hub id: sentence-transformers reads it when the machine is online

    def device(self) -> str:
        return str(resolve_device(self.experiment.device))

    def prepare_biencoder(self, encoder: str, condition: str, seed: int | None, unit: Path):
        """The condition's bi-encoder and its cost: reloaded from a complete earlier training, or built (and,
        but for zero-shot, trained) now and saved with its ``train.json``."""
        options = self.settings.dense_retriever.options
        saved = unit / "train.json"
        if condition != "zero-shot" and saved.is_file() and (unit / "encoder").is_dir():
            model = load_biencoder(unit / "encoder", options, device=self.device())
            return model, json.loads(saved.read_text(encoding="utf-8"))["cost"]
        model, stats, cost = fit_biencoder(
            self.location(encoder),
            options,
            self.training_pairs(condition) if condition != "zero-shot" else None,
            seed=seed,
            output_dir=unit / "trainer",
            device=self.device(),
            progress=self.runner.progress,
            desc=f"dense retriever {condition} (seed {seed})",
        )
        cost = {**cost, "condition": condition}
        if stats is not None:
            unit.mkdir(parents=True, exist_ok=True)
            replace_dir_atomically(unit / "encoder", lambda tmp: model.save(str(tmp)))
            settings = self.condition_settings(encoder, condition, seed)
            atomic_write_json(
                saved,
                {
                    "encoder": encoder,
                    "condition": condition,
                    "seed": seed,
                    "cost": cost,
                    "losses": stats.losses,
                    "options": options.to_dict(),
                    "settings": settings,
                    "fingerprint": fingerprint(settings),
                },
            )
            shutil.rmtree(unit / "trainer", ignore_errors=True)
        return model, cost

    def score_biencoder(self, model, encoder: str, condition: str, seed, unit: Path, key, cost) -> Cell:
        task, language = key
        system = f"dense:{condition}"
        config = self.config(task)
        try:
            data = self.runner.examples(task, language)
            encoder_obj = SentenceEncoder(
                model, self.settings.dense_retriever.options, model_state_fingerprint(model)
            )
            with Measured() as measured:
                ranking, _ = rank.dense_ranking(
                    encoder_obj,
                    data,
                    layer=0,
                    depth=config.depth,
                    with_title=config.with_title,
                    cache=config.cache,
                    chunk_size=config.chunk_size,
                    backend=config.search,
                    device=self.device(),
                    progress=self.runner.progress,
                )
            ranking.details["encoder"] = {
                "model": encoder,
                "condition": condition,
                **self.settings.dense_retriever.options.to_dict(),
            }
            result = score_ranking(
                task, data, ranking, bootstrap_samples=config.bootstrap_samples, seed=config.seed
            )
        except (TliError, RuntimeError, ValueError, OSError) as exc:
            return failed_cell(encoder, None, seed, task, language, system, exc)
        return write_cell(
            cell_dir(unit, task, language),
            result,
            task=task,
            language=language,
            model=encoder,
            strategy=None,
            seed=seed,
            system=system,
            cost={**cost, "evaluate_seconds": measured.seconds},
            tracker=self.runner.tracker,
            settings=self.condition_cell_settings(encoder, condition, seed, task, language),
        )

    # -- training data ----------------------------------------------------------------------------------

    def training_pairs(self, condition: str):
        spec = self.settings.dense_retriever
        pairs = []
        if condition in ("direct-transfer", "mix"):
            data = load_ref(spec.english)
            pairs += [TrainingPair(q, p, data.passage_language, "english") for _, q, _, p in pairs_of(data)]
        if condition in ("synthetic", "mix"):
            pairs += [
                TrainingPair(r["query"], r["passage"], r["passage_language"], f"synthetic:{r['method']}")
                for r in self.synthetic_rows()
            ]
        return pairs

    def synthetic_rows(self) -> list[dict[str, Any]]:
        """The synthetic pairs (generated once per run directory, then read back)."""
        if self._synthetic is not None:
            return self._synthetic
        spec = self.settings.dense_retriever
        options = spec.synthetic
        passages, english, sources = [], [], {}
        if spec.synthetic_passages is not None:
            data = load_ref(spec.synthetic_passages)
            seen = {}
            for _, _, doc, text in pairs_of(data):
                seen.setdefault(doc, text)
            passages = [SourcePassage(doc, text) for doc, text in seen.items()]
            sources["passages"] = spec.synthetic_passages.describe()
        if spec.english is not None and {"translate", "code-switch"} & set(options.methods):
            data = load_ref(spec.english)
            english = [SourceQuery(qid, q, p, doc) for qid, q, doc, p in pairs_of(data)]
            sources["english"] = spec.english.describe()
        needs_llm = bool({"doc2query", "translate"} & set(options.methods))
        generator = self.experiment.models[0] if options.generator == "model" else options.generator
        loaded = (
            load_model(generator, dtype=self.experiment.dtype, device=self.experiment.device)
            if needs_llm
            else None
        )
        result = generate_synthetic(
            loaded,
            passages,
            english,
            options,
            out_dir=self.out / "synthetic",
            sources=sources,
            progress=self.runner.progress,
        )
        self._synthetic = result.rows
        return self._synthetic

    # -- everything -------------------------------------------------------------------------------------

    def run(self, strategy_cells: list[Cell]) -> list[Cell]:
        """BM25, fusion of BM25 with every dense strategy cell, and the dense-retriever conditions."""
        bm25 = self.bm25_cells()
        by_key = {(c.task, c.language): c for c in bm25}
        cells = list(bm25)
        for cell in strategy_cells:
            if cell.system is not None:
                fused = self.fusion_cell(cell, by_key.get((cell.task, cell.language)))
                if fused is not None:
                    cells.append(fused)
        for cell in self.condition_cells():
            cells.append(cell)
            fused = self.fusion_cell(cell, by_key.get((cell.task, cell.language)))
            if fused is not None:
                cells.append(fused)
        return cells


__all__ = ["RetrievalRunner", "read_trec_run"]

"""Run-directory writers: ``results.json``, CSV tables, ``report.md`` and plots, all atomic.

``results.json`` is always written last, so a directory holding it is a complete run. Report sentences are
generated from the verdicts (:func:`tli.claims.outcome`), so the wording follows the numbers.

The package, one module per kind of run directory: :mod:`~tli.report.scan`, :mod:`~tli.report.training`,
:mod:`~tli.report.evaluation` (with its tables in :mod:`~tli.report.tables`), :mod:`~tli.report.seeds` (an
evaluation over several seeds) and :mod:`~tli.report.run` (the top-level report of ``tli run``);
:mod:`~tli.report.formatting` holds the Markdown helpers they share.
"""

from __future__ import annotations

from tli.report.evaluation import (
    EVALUATE_PLOTS,
    PAIR_FIELDS,
    evaluation_report,
    projection_sample,
    uniform_shift_notes,
    what_the_numbers_say,
    write_evaluate_plots,
    write_evaluate_run,
)
from tli.report.formatting import plot_index
from tli.report.run import run_report
from tli.report.scan import (
    ALL_LAYER_FIELDS,
    LAYER_FIELDS,
    bos_phrase,
    layer_table,
    scan_findings,
    scan_report,
    write_scan_run,
)
from tli.report.seeds import seeds_summary_report, seeds_table, write_seeds_summary
from tli.report.tables import BLI_SYSTEMS, bli_table, claim_n, claims_table, evaluation_table
from tli.report.training import read_metrics, write_train_run

__all__ = [
    "ALL_LAYER_FIELDS",
    "BLI_SYSTEMS",
    "EVALUATE_PLOTS",
    "LAYER_FIELDS",
    "PAIR_FIELDS",
    "bli_table",
    "bos_phrase",
    "claim_n",
    "claims_table",
    "evaluation_report",
    "evaluation_table",
    "layer_table",
    "plot_index",
    "projection_sample",
    "read_metrics",
    "run_report",
    "scan_findings",
    "scan_report",
    "seeds_summary_report",
    "seeds_table",
    "uniform_shift_notes",
    "what_the_numbers_say",
    "write_evaluate_plots",
    "write_evaluate_run",
    "write_scan_run",
    "write_seeds_summary",
    "write_train_run",
]

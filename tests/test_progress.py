"""Progress off a terminal: a line at least every LOG_EVERY_SECONDS (however long a unit takes), never a line
twice, and every long stage (scan, evaluation, report, training) says what it is doing."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from tli import progress as progress_module


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tli.progress"]


def _wait_for(condition, timeout: float = 20.0) -> bool:
    """Poll ``condition`` (no timing assertion: the test only needs it to happen at all)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_a_unit_longer_than_the_interval_still_gets_its_lines(monkeypatch, caplog):
    monkeypatch.setattr(progress_module, "LOG_EVERY_SECONDS", 0.05)
    with caplog.at_level(logging.INFO, logger="tli.progress"):
        with progress_module.Progress(2, "one slow batch", unit="batch", enabled=None) as bar:
            # No update for a while: the heartbeat logs on its own (pytest's stderr is no terminal).
            assert _wait_for(lambda: len(_lines(caplog)) >= 2)
            bar.update(2)
    lines = _lines(caplog)
    assert lines[0].startswith("one slow batch: 0/2 batches (0%)") and "elapsed" in lines[0]
    assert lines[-1].startswith("one slow batch: 2/2 batches (100%)")
    assert not [t for t in threading.enumerate() if t.name.startswith("progress: one slow batch")]


def test_the_final_line_is_logged_once(monkeypatch, caplog):
    monkeypatch.setattr(progress_module, "LOG_EVERY_SECONDS", 0.0)  # every update logs, as a slow run does
    with caplog.at_level(logging.INFO, logger="tli.progress"):
        with progress_module.Progress(3, "fine-tuning lora", enabled=None) as bar:
            for _ in range(3):
                bar.update(1, loss=0.25)
    lines = _lines(caplog)
    assert [line.split(",")[0] for line in lines] == [
        "fine-tuning lora: 1/3 steps (33%)",
        "fine-tuning lora: 2/3 steps (67%)",
        "fine-tuning lora: 3/3 steps (100%)",
    ]


def test_stage_names_its_step_and_ends_with_a_line(monkeypatch, caplog):
    monkeypatch.setattr(progress_module, "LOG_EVERY_SECONDS", 0.05)
    with caplog.at_level(logging.INFO, logger="tli.progress"):
        with progress_module.stage("evaluation (seed 0)") as bar:
            bar.update(0, step="BLI")
            assert _wait_for(lambda: any("step BLI" in line for line in _lines(caplog)))
    lines = _lines(caplog)
    assert lines[0].startswith("evaluation (seed 0): 0/1 stages (0%), step BLI")
    assert lines[-1].startswith("evaluation (seed 0): 1/1 stages (100%), step BLI")


def test_silent_and_terminal_modes_start_no_heartbeat(monkeypatch, caplog):
    monkeypatch.setattr(progress_module, "LOG_EVERY_SECONDS", 0.0)
    with caplog.at_level(logging.INFO, logger="tli.progress"):
        with progress_module.Progress(2, "quiet", enabled=False) as bar:
            bar.update(2)
            assert bar._heartbeat is None
    assert _lines(caplog) == []


def test_scan_logs_each_part_when_output_is_redirected(tiny_llama_dir, toy_lexicon_file, caplog):
    from tli.scan import scan

    with caplog.at_level(logging.INFO, logger="tli.progress"):
        scan(str(tiny_llama_dir), str(toy_lexicon_file), progress=None)
    lines = _lines(caplog)
    for part in ("scan: source words", "scan: target words", "scan: per-layer figures"):
        assert any(line.startswith(f"{part}: ") and "(100%)" in line for line in lines), part


@pytest.mark.parametrize("total", [5])
def test_warmup_longer_than_the_run_is_scaled_with_one_warning(total):
    from tli.train import warmup_for

    steps, warning = warmup_for(50, total, 2e-4)
    assert steps == 0 and "peak at 2e-05 instead of --lr 0.0002" in warning
    assert warmup_for(50, 815, 2e-4) == (50, None)  # the published setting: untouched
    assert warmup_for(0, 5, 2e-4) == (0, None)
    assert warmup_for(20, 200, 2e-4)[0] == 20
    assert warmup_for(300, 200, 2e-4)[0] == 20  # 10 % of the run

"""The terminal view of a plan (:func:`format_plan`): one Markdown row per strategy, then notes and assumptions."""

from __future__ import annotations

from tli.plan.results import Plan


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_plan(result: Plan) -> str:
    """A Markdown table of the plan for the terminal (one row per strategy, then notes and assumptions)."""
    a = result.architecture
    s = result.settings
    lines = [
        f"{result.model}: {a['family']}, {a['num_layers']} blocks, hidden {a['hidden_size']}, "
        f"{result.parameters / 1e9:.2f} B parameters",
        f"GPU: {s['gpu_memory_gb']:g} GiB, {s['gpu_tflops']:g} TFLOPS; target layer {s['target_layer']}; "
        f"LoRA r={s['lora_r']} on {','.join(s['lora_targets'])}",
        "",
        "| strategy | memory/device (GiB) | devices | split | fits 1 GPU | 1-device peak (GiB) | time |",
        "| --- | ---: | ---: | --- | :---: | ---: | ---: |",
    ]
    for name, st in result.strategies.items():
        lines.append(
            f"| {name} | {st.memory_gb:.1f} | {st.devices if st.devices else '-'} | {st.split} | "
            f"{'yes' if st.fits_one_gpu else 'no'} | {st.memory_gb_one_device:.1f} | "
            f"{_fmt_seconds(st.seconds)} |"
        )
    lines.append("")
    for name, st in result.strategies.items():
        parts = ", ".join(f"{k} {v:.2f}" for k, v in st.components_gb.items())
        lines.append(f"- {name}: {parts}" + (f" ({'; '.join(st.notes)})" if st.notes else ""))
    lines += ["", "Assumptions:"] + [f"- {text}" for text in result.assumptions]
    return "\n".join(lines)

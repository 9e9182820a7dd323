"""One planner per strategy (full, LoRA, QLoRA, TLI, streaming scan, inference): memory components, the peak
per device as a function of the number of devices, FLOPs per token and notes (:data:`PLANNERS`)."""

from __future__ import annotations

import math
from dataclasses import replace

from tli.architecture import GIB, Architecture, nf4_weight_bytes, weight_bytes
from tli.plan.devices import _gb, _strategy, _with_overhead
from tli.plan.memory import (
    _activations,
    _optimizer_temporaries,
    block_activation_bytes,
    inference_activation_bytes,
    lora_parameters,
    loss_transient_bytes,
)
from tli.plan.results import StrategyPlan
from tli.plan.settings import DTYPE_BYTES, PlanSettings


def plan_full(arch: Architecture, s: PlanSettings) -> StrategyPlan:
    """Full fine-tuning with AdamW.

    Bytes per parameter: weights b + gradients b + AdamW m, v (fp32, 8) + an fp32 master copy when the
    weights are half precision (4) → 16 B/param in bf16 mixed precision and in fp32.
    Peak = W + O + max(A + loss transient + G_lm_head, G + step temporaries): at the end of forward all
    activations are alive and the previous gradients freed; during the optimiser step all gradients are.
    FSDP/ZeRO-3 over N shards W, G, O and the temporaries; each device keeps its activations and
    gathers two units (block or embedding) of weights plus one of gradients at a time.
    FLOPs ≈ 6·N_c per token (+2·N_c with checkpointing), ``N_c = blocks + lm_head projection``.
    """
    b = s.bytes_per_element
    p = arch.parameters()
    w, g = p * b, p * b
    opt = p * (8 + (4 if b < 4 else 0))
    act = _activations(arch, s, b, trainable=True, lora=False)
    with_ckpt, without_ckpt = (
        _activations(arch, replace(s, gradient_checkpointing=flag), b, trainable=True, lora=False)
        for flag in (True, False)
    )
    loss = loss_transient_bytes(arch, s.batch_size * s.seq_len)
    g_head = (arch.lm_head_parameters() or arch.embedding_parameters()) * b
    temp = _optimizer_temporaries(p, arch.embedding_parameters(), s)
    unit = max(arch.block_parameters(), arch.embedding_parameters()) * b

    def peak(n: int) -> float:
        gathered = 3 * unit if n > 1 else 0
        return (w + opt) / n + max(act + loss + g_head / n, (g + temp) / n) + gathered

    n_c = arch.num_layers * arch.block_parameters() + arch.embedding_parameters()
    return _strategy(
        {
            "weights": w,
            "gradients": g,
            "optimizer": opt,
            "activations": act,
            "loss_transient": loss,
            "step_temporaries": temp,
        },
        "weights + optimizer + max(activations + loss_transient + lm_head grads, gradients + "
        "step_temporaries) + overhead; FSDP divides weights, gradients, optimizer, temporaries by N",
        peak,
        "FSDP (ZeRO-3)",
        s,
        (8 if s.gradient_checkpointing else 6) * n_c,
        s.batch_size * s.seq_len,
        [
            "16 bytes/param for weights + gradients + AdamW state (+ fp32 master copy in half precision)",
            f"activations {_gb(with_ckpt):.2f} GiB with gradient checkpointing, "
            f"{_gb(without_ckpt):.2f} GiB without",
        ],
    )


def _lora_like(arch: Architecture, s: PlanSettings, base: float, e: int, notes: list[str]) -> StrategyPlan:
    p_lora = lora_parameters(arch, s.lora_targets, s.lora_r, arch.num_layers)
    state = 16 * p_lora  # fp32 adapter (PEFT upcasts), fp32 gradient, AdamW m and v
    act = _activations(arch, s, e, trainable=False, lora=True)
    loss = loss_transient_bytes(arch, s.batch_size * s.seq_len)
    unit = max(arch.block_parameters(), arch.embedding_parameters()) * s.bytes_per_element

    def peak(n: int) -> float:
        return (base + state) / n + act + loss + (3 * unit if n > 1 else 0)

    n_c = arch.num_layers * arch.block_parameters() + arch.embedding_parameters()
    return _strategy(
        {"weights": base, "lora_state": state, "activations": act, "loss_transient": loss},
        "weights + lora_state + activations + loss_transient + overhead; FSDP shards weights and "
        "LoRA state over N",
        peak,
        "FSDP",
        s,
        (6 if s.gradient_checkpointing else 4) * n_c,
        s.batch_size * s.seq_len,
        [
            f"LoRA r={s.lora_r} on {','.join(s.lora_targets)} of all {arch.num_layers} blocks: "
            f"{p_lora / 1e6:.1f} M trainable parameters",
            *notes,
        ],
    )


def plan_lora(arch: Architecture, s: PlanSettings) -> StrategyPlan:
    """LoRA on every block over a frozen base in ``dtype``.

    Memory = P·b (frozen base) + 16·P_LoRA (fp32 adapter, gradient, AdamW m, v) + activations (frozen
    linears keep no inputs; each adapted module keeps 8·in + 4·r B/token) + loss transient + overhead.
    FLOPs ≈ 4·N_c per token (forward + activation gradients; no weight gradients), +2·N_c with
    checkpointing.
    """
    return _lora_like(arch, s, arch.parameters() * s.bytes_per_element, s.bytes_per_element, [])


def plan_qlora(arch: Architecture, s: PlanSettings) -> StrategyPlan:
    """QLoRA: NF4 base (see :func:`nf4_tensor_bytes`) + LoRA on every block.

    Memory = NF4 block linears + non-quantised parts (embeddings, lm_head, norms, biases) at 4 B/param
    when ``kbit_upcast`` (PEFT's ``prepare_model_for_kbit_training``, as tli does) else 2 + 16·P_LoRA +
    activations (fp32 when upcast) + loss transient + overhead. FLOPs as LoRA (dequantisation not counted).
    """
    other = 4 if s.kbit_upcast else 2
    base = nf4_weight_bytes(arch, arch.num_layers, s.double_quant, other)
    e = 4 if s.kbit_upcast else 2
    note = "NF4 dequantisation makes steps slower than the FLOP count says"
    return _lora_like(arch, s, base, e, [note])


def tli_blocks(arch: Architecture, target_layer: int) -> tuple[int, int]:
    """(blocks that run and get LoRA, blocks tli loads): both L — ``load_model(up_to_layer=L)`` reads the
    embeddings and blocks ``0..L-1`` only (the truncated backbone ends after block L-1; no lm_head)."""
    return target_layer, min(target_layer, arch.num_layers)


def plan_tli(arch: Architecture, s: PlanSettings) -> StrategyPlan:
    """Targeted Lexical Injection: truncated loading, LoRA on blocks 0..L-1, forward stops after block L-1.

    Memory = embeddings + min(L, N) blocks (no final norm, no lm_head: never loaded) in NF4 (+fp32
    non-quantised parts when ``kbit_upcast``) or ``dtype`` + 16·P_LoRA + activations of L LoRA blocks for
    ``2·batch_size`` words of ``word_tokens`` tokens (no loss head: the loss uses pooled vectors) + overhead.
    FLOPs ≈ 4·L·P_block per token.
    """
    run, loaded = tli_blocks(arch, s.target_layer)
    nf4 = s.tli_quantization == "nf4"
    head = arch.lm_head_parameters() + arch.hidden_size  # untied lm_head and the final norm: not loaded
    if nf4:
        other = 4 if s.kbit_upcast else 2
        w = nf4_weight_bytes(arch, loaded, s.double_quant, other) - head * other
        e = other
    else:
        w = weight_bytes(arch, s.bytes_per_element, loaded) - head * s.bytes_per_element
        e = s.bytes_per_element
    p_lora = lora_parameters(arch, s.lora_targets, s.lora_r, run)
    state = 16 * p_lora
    n = 2 * s.batch_size * s.word_tokens
    act = (
        run
        * block_activation_bytes(
            arch,
            n,
            s.word_tokens,
            e,
            trainable=False,
            lora_targets=s.lora_targets,
            lora_r=s.lora_r,
            attention=s.attention,
        )
        + n * 8
    )

    def peak(devices: int) -> float:
        return (w + state) / devices + act

    notes = [
        f"loads {loaded} of {arch.num_layers} blocks ({loaded / arch.num_layers:.1%}); "
        f"LoRA on blocks 0..{run - 1}",
        f"{p_lora / 1e6:.2f} M trainable parameters; {n} tokens per step: steps this small are "
        "latency-bound, expect several times the FLOP time",
    ]
    return _strategy(
        {"weights": w, "lora_state": state, "activations": act},
        "weights (truncated) + lora_state + activations + overhead",
        peak,
        "FSDP",
        s,
        4 * run * arch.block_parameters(),
        n,
        notes,
    )


def plan_scan_stream(arch: Architecture, s: PlanSettings) -> StrategyPlan:
    """Layer-by-layer streaming scan: embeddings + one decoder block in memory at a time.

    Memory = (V·H + P_block + H)·b + block working set (:func:`inference_activation_bytes`) for one chunk
    of ``scan_batch_size × word_tokens`` tokens + pooled vectors (N+1)·words·H·4 + overhead.
    Seconds = max(2·N·P_block·tokens / throughput, checkpoint bytes / disk bandwidth): each pass reads
    the checkpoint once.
    """
    b = s.bytes_per_element
    w = (arch.embedding_parameters() + arch.block_parameters() + arch.hidden_size) * b
    n = s.scan_batch_size * s.word_tokens
    act = (
        inference_activation_bytes(arch, n, b)
        + (arch.num_layers + 1) * s.scan_batch_size * arch.hidden_size * 4
    )
    checkpoint = arch.parameters() * DTYPE_BYTES.get(arch.checkpoint_dtype, 2)
    result = _strategy(
        {"weights": w, "activations": act},
        "embeddings + one block + activations of one chunk + overhead (cannot be split further)",
        lambda devices: w + act if devices == 1 else math.inf,
        "-",
        s,
        2 * arch.num_layers * arch.block_parameters(),
        n,
        [
            f"reads {checkpoint / GIB:.1f} GiB of {arch.checkpoint_dtype} checkpoint per pass "
            f"at {s.disk_gb_per_s} GiB/s"
        ],
    )
    if result.seconds is not None:
        result.seconds = max(result.seconds, checkpoint / GIB / s.disk_gb_per_s)
    return result


def plan_inference(arch: Architecture, s: PlanSettings) -> StrategyPlan:
    """Whole model in ``dtype`` for a KV-free scan forward (no lm_head computed).

    One device: P·b + block working set for ``scan_batch_size × word_tokens`` tokens + overhead.
    ``device_map`` over N: ⌈layers/N⌉ blocks + the larger of embeddings / lm_head + working set.
    FLOPs ≈ 2·N·P_block per token; a device_map pipeline runs one device at a time (no speed-up).
    """
    b = s.bytes_per_element
    w = arch.parameters() * b
    n = s.scan_batch_size * s.word_tokens
    act = inference_activation_bytes(arch, n, b)
    ends = max(arch.embedding_parameters(), arch.lm_head_parameters() + arch.hidden_size)

    def peak(devices: int) -> float:
        if devices == 1:
            return w + act
        return (math.ceil(arch.num_layers / devices) * arch.block_parameters() + ends) * b + act

    result = _strategy(
        {"weights": w, "activations": act},
        "weights + one block's working set + overhead; device_map: per-device layer share",
        peak,
        "device_map",
        s,
        2 * arch.num_layers * arch.block_parameters(),
        n,
        [],
        data_parallel=False,
    )
    if s.device_map_devices is not None:
        per_device = _with_overhead(peak(s.device_map_devices), s)
        result.memory_gb = _gb(per_device)
        result.split = f"device_map over {s.device_map_devices}"
        fits = per_device <= s.gpu_memory_gb * GIB
        result.notes.append(
            f"--device-map-devices {s.device_map_devices}: {'fits' if fits else 'does NOT fit'}"
        )
    return result


PLANNERS = {
    "full": plan_full,
    "lora": plan_lora,
    "qlora": plan_qlora,
    "tli": plan_tli,
    "scan-stream": plan_scan_stream,
    "inference": plan_inference,
}

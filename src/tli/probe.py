"""``tli probe``: ask the base and the adapted model to translate sampled lexicon words.

The same prompts go to the model with its PEFT adapter disabled (base) and enabled (adapted); answers are
decoded greedily by default and scored against every sense of the source word in the lexicon. The run
directory gets ``probe.md`` (a Markdown table) and ``results.json`` (written last).
"""

from __future__ import annotations

import random
import string
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from tli.errors import ConfigError, TliError
from tli.io import atomic_write_json, atomic_write_text
from tli.lexicon import Lexicon
from tli.models import LoadedModel, ensure_pad_token
from tli.runs import provenance

DEFAULT_PROMPT = 'Translate the Swahili word "{source}" into English. Answer with one word.'
CHAT_TEMPLATE_MODES = ("auto", "yes", "no")
LANGUAGE_NAMES = {"en": "English", "sw": "Swahili", "fr": "French", "de": "German", "es": "Spanish"}
_STRIP = string.punctuation + string.whitespace + "“”‘’«»„‚‹›¡¿…–—"


@dataclass
class ProbeConfig:
    """Options of ``tli probe``.

    Attributes:
        n_pairs: Number of source words sampled (seeded); all of them if the lexicon has fewer.
        seed: Seed for the word sample and, when sampling, for generation.
        prompt: Instruction with a ``{source}`` placeholder.
        max_new_tokens: Generation length limit.
        greedy: Greedy decoding; False samples with ``temperature`` (no top-k / top-p).
        temperature: Sampling temperature (used only when ``greedy`` is False).
        use_chat_template: ``auto`` (the tokenizer's chat template when it has one, else the plain prompt
            followed by ``"\\n<Target language>:"``), ``yes`` or ``no``.
        batch_size: Prompts generated together (left padded).
    """

    n_pairs: int = 20
    seed: int = 0
    prompt: str = DEFAULT_PROMPT
    max_new_tokens: int = 8
    greedy: bool = True
    temperature: float = 0.7
    use_chat_template: str = "auto"
    batch_size: int = 16

    def __post_init__(self) -> None:
        integers = (("--n-pairs", self.n_pairs, 1), ("--max-new-tokens", self.max_new_tokens, 1))
        for option, value, low in (*integers, ("--batch-size", self.batch_size, 1), ("--seed", self.seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{option} must be a whole number >= {low}, got {value!r}")
        try:
            ok = "{source}" in self.prompt and self.prompt.format(source="x") is not None
        except (KeyError, IndexError, ValueError):
            ok = False
        if not ok:
            hint = "{source} marks the word; no other {...} fields (write {{ }} for literal braces)"
            raise ConfigError(f"--prompt {self.prompt!r}: {hint}")
        if not isinstance(self.temperature, (int, float)) or not 0 < self.temperature < float("inf"):
            raise ConfigError(f"--temperature must be a number > 0, got {self.temperature!r}")
        if self.use_chat_template not in CHAT_TEMPLATE_MODES:
            modes = ", ".join(CHAT_TEMPLATE_MODES)
            raise ConfigError(f"--chat-template {self.use_chat_template!r} is not one of {modes}")


@dataclass
class ProbeRow:
    """One probed word: its senses in the lexicon (``target``, joined by " / "), both answers, correctness."""

    source: str
    target: str
    base: str
    adapted: str
    base_correct: bool
    adapted_correct: bool


def sample_sources(lexicon: Lexicon, n: int, seed: int) -> list[str]:
    """``n`` distinct sources (all if fewer) drawn by ``random.Random(seed)``, returned in file order."""
    unique = list(dict.fromkeys(lexicon.sources))
    if n >= len(unique):
        return unique
    chosen = set(random.Random(seed).sample(sorted(unique), n))
    return [source for source in unique if source in chosen]


def build_prompts(
    tokenizer: Any, sources: list[str], config: ProbeConfig, target_lang: str = "en"
) -> tuple[list[str], bool]:
    """Prompt texts for ``sources`` and whether a chat template was applied.

    Raises:
        ConfigError: ``use_chat_template="yes"`` but the tokenizer has no chat template.
    """
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if config.use_chat_template == "yes" and not has_template:
        raise ConfigError("--chat-template yes: this tokenizer has no chat template; use auto or no")
    texts = [config.prompt.format(source=source) for source in sources]
    if has_template and config.use_chat_template != "no":
        chats = [[{"role": "user", "content": text}] for text in texts]
        prompts = [
            tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chats
        ]
        return prompts, True
    return [f"{text}\n{LANGUAGE_NAMES.get(target_lang, target_lang)}:" for text in texts], False


def generate_answers(
    model: Any, tokenizer: Any, prompts: list[str], config: ProbeConfig, *, add_special_tokens: bool = True
) -> list[str]:
    """Generate an answer for each prompt: batched, left padded, first line of the new tokens only.

    Args:
        model: A causal LM (or PEFT wrapper).
        tokenizer: Its tokenizer; ``padding_side`` is ``left`` during the call, then restored.
        prompts: Full prompt texts (chat template already applied when wanted).
        config: Decoding options; sampling is seeded with ``config.seed`` (global RNG state untouched).
        add_special_tokens: False for chat-templated text, which already holds its BOS.

    Returns:
        One answer per prompt (empty when the model stops at once).
    """
    ensure_pad_token(tokenizer)
    device = getattr(model, "device", None) or next(model.parameters()).device
    kwargs: dict[str, Any] = {"max_new_tokens": config.max_new_tokens, "pad_token_id": tokenizer.pad_token_id}
    if config.greedy:
        kwargs.update(do_sample=False, temperature=None, top_k=None, top_p=None)
    else:
        kwargs.update(do_sample=True, temperature=float(config.temperature), top_k=0, top_p=1.0)
    answers: list[str] = []
    padding_side = tokenizer.padding_side
    forked = [device] if torch.device(device).type == "cuda" else []
    try:
        tokenizer.padding_side = "left"
        with torch.inference_mode(), torch.random.fork_rng(devices=forked):
            torch.manual_seed(config.seed)
            for start in range(0, len(prompts), config.batch_size):
                chunk = prompts[start : start + config.batch_size]
                batch = tokenizer(
                    chunk, return_tensors="pt", padding=True, add_special_tokens=add_special_tokens
                )
                ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
                new = model.generate(input_ids=ids, attention_mask=mask, **kwargs)[:, ids.shape[1] :]
                texts = [text.strip() for text in tokenizer.batch_decode(new, skip_special_tokens=True)]
                answers += [text.splitlines()[0].strip() if text else "" for text in texts]
    finally:
        tokenizer.padding_side = padding_side
    return answers


def _normalise(text: str) -> str:
    return " ".join(text.lower().split()).strip(_STRIP)


def is_correct(answer: str, targets: set[str] | list[str]) -> bool:
    """Whether ``answer`` names one of ``targets``.

    Case-insensitive, surrounding punctuation and quotes ignored. Correct when the answer equals a target
    or starts with one followed by a non-letter (``"Dog, the animal"`` for ``dog``, not ``"dogs"``).
    """
    given = _normalise(answer)
    return bool(given) and any(
        given == t or (given.startswith(t) and not given[len(t)].isalpha())
        for t in filter(None, map(_normalise, targets))
    )


def probe(loaded: LoadedModel, lexicon: Lexicon, config: ProbeConfig | None = None) -> list[ProbeRow]:
    """Base and adapted answers for ``config.n_pairs`` sampled source words of ``lexicon``.

    Raises:
        TliError: ``loaded.model`` carries no PEFT adapter.
        ConfigError: ``use_chat_template="yes"`` without a chat template.
    """
    from peft import PeftModel

    config = config or ProbeConfig()
    if not isinstance(loaded.model, PeftModel):
        hint = "it compares the base model's answers with the adapted model's"
        raise TliError(f"tli probe needs --adapter DIR (e.g. RUN/adapter from tli train): {hint}")
    sources = sample_sources(lexicon, config.n_pairs, config.seed)
    gold = {source: [p.target for p in lexicon if p.source == source] for source in sources}
    prompts, chat = build_prompts(loaded.tokenizer, sources, config, lexicon.target_lang)
    with loaded.model.disable_adapter():
        base = generate_answers(loaded.model, loaded.tokenizer, prompts, config, add_special_tokens=not chat)
    adapted = generate_answers(loaded.model, loaded.tokenizer, prompts, config, add_special_tokens=not chat)
    rows = zip(sources, base, adapted, strict=True)
    return [
        ProbeRow(s, " / ".join(gold[s]), b, a, is_correct(b, set(gold[s])), is_correct(a, set(gold[s])))
        for s, b, a in rows
    ]


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|") if text else "_(empty)_"


def probe_summary(rows: list[ProbeRow]) -> str:
    """``"base: k/n correct, adapted: m/n correct"``."""
    n = len(rows)
    k, m = sum(r.base_correct for r in rows), sum(r.adapted_correct for r in rows)
    return f"base: {k}/{n} correct, adapted: {m}/{n} correct"


def probe_table(rows: list[ProbeRow]) -> str:
    """A Markdown table of the rows followed by the summary line."""
    mark = {True: "✓", False: "✗"}
    lines = ["| source | expected | base | adapted | base ✓ | adapted ✓ |", "|---|---|---|---|:---:|:---:|"]
    for r in rows:
        cells = [_cell(r.source), _cell(r.target), _cell(r.base), _cell(r.adapted)]
        lines.append(f"| {' | '.join(cells)} | {mark[r.base_correct]} | {mark[r.adapted_correct]} |")
    return "\n".join(lines) + f"\n\n{probe_summary(rows)}\n"


def write_probe_run(
    out: Path, rows: list[ProbeRow], config: ProbeConfig, loaded: LoadedModel, lexicon: Lexicon | None = None
) -> Path:
    """Write ``probe.md`` and then ``results.json`` (last) into ``out``; returns ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = loaded.describe()
    decoding = "greedy" if config.greedy else f"sampling, temperature {config.temperature}"
    header = (
        f"# tli probe\n\n- model: `{model['name']}`, adapter: `{model['adapter']}`\n"
        f"- prompt: `{config.prompt}` (chat template: {config.use_chat_template})\n"
        f"- decoding: {decoding}, max {config.max_new_tokens} new tokens, seed {config.seed}\n"
        f"- {len(rows)} words; an answer is correct when it is, or starts with, a sense in the lexicon\n\n"
    )
    atomic_write_text(out / "probe.md", header + probe_table(rows))
    record: dict[str, Any] = {
        "probe": [asdict(r) for r in rows],
        "base_correct": sum(r.base_correct for r in rows),
        "adapted_correct": sum(r.adapted_correct for r in rows),
        "n": len(rows),
        **provenance("probe", asdict(config), config.seed),
        "model": model,
    }
    if lexicon is not None:
        record["lexicon"] = {"path": lexicon.path, "fingerprint": lexicon.fingerprint(), "size": len(lexicon)}
    atomic_write_json(out / "results.json", record)
    return out

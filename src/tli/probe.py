"""``tli probe``: ask the base and the adapted model to translate sampled lexicon words.

The same prompts go to the model with its PEFT adapter disabled (base) and enabled (adapted); answers are
decoded greedily by default and scored against every sense of the source word in the lexicon, twice: leniently
(a sense appears in the answer as a whole word or phrase, see :func:`is_correct`) and strictly (the answer is
exactly a sense, see :func:`is_exact`). The run directory gets ``probe.md`` (a Markdown table) and
``results.json`` (written last); both keep the raw answers.

In-function import: ``peft`` (see :mod:`tli.train`), to check the model carries an adapter.
"""

from __future__ import annotations

import random
import string
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from tli.config import CHAT_TEMPLATE_MODES, DEFAULT_PROBE_PROMPT, ProbeConfig
from tli.errors import ConfigError
from tli.io import atomic_write_json, atomic_write_text
from tli.lexicon import Lexicon
from tli.models import LoadedModel, ensure_pad_token, input_device
from tli.runs import mark_complete, provenance
from tli.words import folded_words

DEFAULT_PROMPT = DEFAULT_PROBE_PROMPT
__all__ = ["CHAT_TEMPLATE_MODES", "DEFAULT_PROMPT", "ProbeConfig", "ProbeRow", "probe", "write_probe_run"]

LANGUAGE_NAMES = {"en": "English", "sw": "Swahili", "fr": "French", "de": "German", "es": "Spanish"}
_STRIP = string.punctuation + string.whitespace + "“”‘’«»„‚‹›¡¿…–—"


@dataclass
class ProbeRow:
    """One probed word: its senses in the lexicon (``target``, joined by " / "), both raw answers, and for
    each whether it names a sense (``*_correct``, :func:`is_correct`) and whether it is exactly one
    (``*_exact``, :func:`is_exact`)."""

    source: str
    target: str
    base: str
    adapted: str
    base_correct: bool
    adapted_correct: bool
    base_exact: bool = False
    adapted_exact: bool = False


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
    device = input_device(
        model
    )  # with a device map: where the embedding runs (never an offloaded meta weight)
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
    text = unicodedata.normalize("NFC", text).casefold()
    return " ".join(text.split()).strip(_STRIP)


def _starts(haystack: list[str], needle: list[str]) -> list[int]:
    """Indices where the word sequence ``needle`` occurs in ``haystack``."""
    k = len(needle)
    return [i for i in range(len(haystack) - k + 1) if k and haystack[i : i + k] == needle]


def echo_mask(
    answer: list[str], source: list[str], prompt: list[str], *, mask_source: bool = True
) -> list[bool]:
    """Which answer words repeat the question rather than answer it.

    Masked: every answer word inside a run of two or more consecutive words that also follow each other in
    the prompt (the model restating "the Swahili word mbwa into English"), and, when ``mask_source``, every
    occurrence of the source word itself.
    """
    masked = [False] * len(answer)
    prompt_bigrams = set(zip(prompt, prompt[1:], strict=False))
    for i, bigram in enumerate(zip(answer, answer[1:], strict=False)):
        if bigram in prompt_bigrams:
            masked[i] = masked[i + 1] = True
    if mask_source:
        for start in _starts(answer, source):
            masked[start : start + len(source)] = [True] * len(source)
    return masked


def is_correct(answer: str, targets: Iterable[str], *, source: str = "", prompt: str = "") -> bool:
    """Whether ``answer`` names one of ``targets`` somewhere in it (the lenient rule of ``tli probe``).

    Rule: split the answer and each target into words with :func:`tli.words.folded_words` (case-insensitive,
    Unicode word boundaries, punctuation and quotes ignored). The answer is correct when the word sequence of some
    target occurs contiguously in the answer's words, none of them an echo of the question (:func:`echo_mask`: the
    source word, or two or more consecutive words of ``prompt``). So ``"The Swahili word 'mbwa' means 'dog' in
    English."`` names ``dog``; ``"dogs"`` does not; ``"Thank you very much!"`` names the phrase ``thank you very
    much`` and ``"thank you"`` does not. When the source word is spelled like one of its senses (a loanword) its
    echo cannot be told from the answer, so it is not masked.

    The rule is lenient by design: ``"cat or dog"`` and ``"not a dog"`` count as naming ``dog``; read the raw
    answers, or the strict :func:`is_exact`, for those.

    Args:
        answer: The model's raw answer.
        targets: Every lexicon sense of the source word.
        source: The source word (its echo is ignored).
        prompt: The instruction the model was given, with the source filled in (its echo is ignored).
    """
    senses = [w for w in map(folded_words, targets) if w]
    given = folded_words(answer)
    source_words = folded_words(source)
    masked = echo_mask(given, source_words, folded_words(prompt), mask_source=source_words not in senses)
    return any(
        not any(masked[start : start + len(sense)]) for sense in senses for start in _starts(given, sense)
    )


def is_exact(answer: str, targets: Iterable[str]) -> bool:
    """Whether ``answer`` is exactly one of ``targets`` (the strict rule of ``tli probe``).

    Case-insensitive after NFC normalisation, runs of whitespace collapsed, and punctuation or quotes
    around the answer ignored (``'"Dog."'`` is exactly ``dog``; ``"the dog"`` is not).
    """
    given = _normalise(answer)
    return bool(given) and given in set(filter(None, map(_normalise, targets)))


def probe(loaded: LoadedModel, lexicon: Lexicon, config: ProbeConfig | None = None) -> list[ProbeRow]:
    """Base and adapted answers for ``config.n_pairs`` sampled source words of ``lexicon``.

    Raises:
        TliError: ``loaded.model`` carries no PEFT adapter.
        ConfigError: ``use_chat_template="yes"`` without a chat template.
    """
    config = config or ProbeConfig()
    from peft import PeftModel

    if not isinstance(loaded.model, PeftModel):
        hint = "it compares the base model's answers with the adapted model's"
        raise ConfigError(f"tli probe needs --adapter DIR (e.g. RUN/adapter from tli train): {hint}")
    sources = sample_sources(lexicon, config.n_pairs, config.seed)
    gold = {source: [p.target for p in lexicon if p.source == source] for source in sources}
    prompts, chat = build_prompts(loaded.tokenizer, sources, config, lexicon.target_lang)
    with loaded.model.disable_adapter():
        base = generate_answers(loaded.model, loaded.tokenizer, prompts, config, add_special_tokens=not chat)
    adapted = generate_answers(loaded.model, loaded.tokenizer, prompts, config, add_special_tokens=not chat)
    rows = []
    for source, base_answer, adapted_answer in zip(sources, base, adapted, strict=True):
        senses, instruction = gold[source], config.prompt.format(source=source)
        rows.append(
            ProbeRow(
                source,
                " / ".join(senses),
                base_answer,
                adapted_answer,
                is_correct(base_answer, senses, source=source, prompt=instruction),
                is_correct(adapted_answer, senses, source=source, prompt=instruction),
                is_exact(base_answer, senses),
                is_exact(adapted_answer, senses),
            )
        )
    return rows


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|") if text else "_(empty)_"


def probe_summary(rows: list[ProbeRow]) -> str:
    """``"base: k/n correct (e exact), adapted: m/n correct (f exact)"``."""
    n = len(rows)
    k, m = sum(r.base_correct for r in rows), sum(r.adapted_correct for r in rows)
    e, f = sum(r.base_exact for r in rows), sum(r.adapted_exact for r in rows)
    return f"base: {k}/{n} correct ({e} exact), adapted: {m}/{n} correct ({f} exact)"


def probe_table(rows: list[ProbeRow]) -> str:
    """A Markdown table of the rows (raw answers, lenient and strict scores) followed by the summary line."""
    mark = {True: "✓", False: "✗"}
    lines = [
        "| source | expected | base | adapted | base ✓ | adapted ✓ | base exact | adapted exact |",
        "|---|---|---|---|:---:|:---:|:---:|:---:|",
    ]
    for r in rows:
        cells = [_cell(r.source), _cell(r.target), _cell(r.base), _cell(r.adapted)]
        marks = [mark[r.base_correct], mark[r.adapted_correct], mark[r.base_exact], mark[r.adapted_exact]]
        lines.append(f"| {' | '.join(cells + marks)} |")
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
        f"- {len(rows)} words; ✓: a lexicon sense appears in the answer as a whole word or phrase "
        "(case and punctuation ignored, echoes of the source word and the prompt ignored); "
        "exact: the answer is exactly a sense\n\n"
    )
    atomic_write_text(out / "probe.md", header + probe_table(rows))
    record: dict[str, Any] = {
        "probe": [asdict(r) for r in rows],
        "base_correct": sum(r.base_correct for r in rows),
        "adapted_correct": sum(r.adapted_correct for r in rows),
        "base_exact": sum(r.base_exact for r in rows),
        "adapted_exact": sum(r.adapted_exact for r in rows),
        "n": len(rows),
        "scoring": {
            "correct": "a lexicon sense appears in the answer as a whole word or phrase (case-insensitive, "
            "Unicode word boundaries, punctuation ignored, echoes of the source word and the prompt ignored)",
            "exact": "the answer, trimmed of surrounding punctuation and quotes, is exactly a lexicon sense",
        },
        **provenance("probe", asdict(config), config.seed),
        "model": model,
    }
    if lexicon is not None:
        record["lexicon"] = {"path": lexicon.path, "fingerprint": lexicon.fingerprint(), "size": len(lexicon)}
    atomic_write_json(out / "results.json", record)
    mark_complete(out, "probe")
    return out

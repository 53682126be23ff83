"""System prompts and the chat template that carries them.

The paper's evaluation silently lost the training system prompt because the saved model's chat template did not
contain it. Here the template itself can carry a default system prompt: ``chat_template(default_system=...)``
renders it whenever the conversation has no system message, so any consumer of a checkpoint
(``AutoTokenizer.from_pretrained`` + ``apply_chat_template``) gets the training prompt without extra flags.
"""

from __future__ import annotations

from collections.abc import Sequence

# Rajani et al. 2025, Figure 15 (verbatim, including the literal "\n" the format line renders as newlines).
PAPER_SYSTEM_PROMPT = (
    "You are a helpful AI Assistant that provides well-reasoned and detailed responses. You first think about the "
    "reasoning process as an internal monologue and then provide the user with the answer. Respond in the "
    "following format: <think>\n...\n</think>\n<answer>\n...\n</answer>"
)

# The micro-world's analogue: same instruction, fewer tokens (every pretraining sequence pays for it).
MICROWORLD_SYSTEM_PROMPT = (
    "You are a helpful assistant. Think first, then answer in the format <think>\n...\n</think>\n<answer>\n...\n</answer>"
)

# OLMo-2-Instruct's turn markers, so micro-world transcripts look like the real model's.
BOS, EOS, PAD = "<|endoftext|>", "<|endoftext|>", "<|pad|>"
SYSTEM, USER, ASSISTANT = "<|system|>", "<|user|>", "<|assistant|>"


def _jinja_string(text: str) -> str:
    """Quote text as a Jinja string literal (the template is data, never code from outside)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def chat_template(default_system: str | None = None) -> str:
    """OLMo-2's template, optionally with a default system prompt used when no system message is given.

    The assistant turn ends with the EOS token written by the template itself, and the generation prompt is an
    exact prefix of prompt + completion: both are what TRL's completion-only SFT needs.
    """
    default = ""
    if default_system:
        default = (
            "{%- if not messages or messages[0]['role'] != 'system' -%}"
            "{{ '<|system|>\\n' + " + _jinja_string(default_system) + " + '\\n' }}"
            "{%- endif -%}"
        )
    return (
        "{{ bos_token }}" + default +
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'system' -%}{{ '<|system|>\\n' + message['content'] + '\\n' }}"
        "{%- elif message['role'] == 'user' -%}{{ '<|user|>\\n' + message['content'] + '\\n' }}"
        "{%- elif message['role'] == 'assistant' -%}"
        "{%- if not loop.last -%}{{ '<|assistant|>\\n' + message['content'] + eos_token + '\\n' }}"
        "{%- else -%}{{ '<|assistant|>\\n' + message['content'] + eos_token }}{%- endif -%}"
        "{%- endif -%}"
        "{%- if loop.last and add_generation_prompt -%}{{ '<|assistant|>\\n' }}{%- endif -%}"
        "{%- endfor -%}"
        "{%- if not messages and add_generation_prompt -%}{{ '<|assistant|>\\n' }}{%- endif -%}"
    )


def messages(question: str, system: str | None = None,
             shots: Sequence[Sequence[str]] = ()) -> list[dict[str, str]]:
    """A conversation ending with the user's question, after few-shot (question, answer) turns if any;
    ``system=None`` leaves the choice to the template's default."""
    turns = [{"role": "system", "content": system}] if system is not None else []
    for q, a in shots:
        turns += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return turns + [{"role": "user", "content": question}]

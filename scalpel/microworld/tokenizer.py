"""The micro-world tokenizer: byte-level BPE trained on the world's own corpus, saved as a normal HF tokenizer.

Byte-level means any text round-trips (real benchmarks can be fed to the tiny model); a vocabulary large enough
for every world word and number 0-199 to be one token keeps sequences short. Numbers are split from the space
before them, so a number has one token wherever it stands (a prototype without this could not copy operands).
The format tags are added tokens, one token each (byte-level pre-tokenization would cut ``<think>`` into three),
but not special ones: TRL decodes completions with ``skip_special_tokens=True`` and the rewards must see them.
The words of the styles the base never writes (the teacher's, the neutral KL text) are seeded into the
vocabulary, so SFT targets and KL text are as short as a real tokenizer would make them, without putting the
styles into pretraining.
"""

from __future__ import annotations

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from scalpel.data import prompts as P
from scalpel.microworld.tasks import Problem, neutral_solution
from scalpel.microworld.teacher import teacher_solution

SPECIAL_TOKENS = [P.EOS, P.PAD, P.SYSTEM, P.USER, P.ASSISTANT]
FORMAT_TAGS = ["<think>", "</think>", "<answer>", "</answer>"]
_EXAMPLE = Problem("example", (4, 3, 2), "", ((4, "*", 3, 12), (12, "+", 2, 14), (14, "-", 2, 12)), 12)
STYLE_WORDS = f"{teacher_solution(_EXAMPLE)}\n{neutral_solution(_EXAMPLE)}\n"


def train_tokenizer(texts: list[str], vocab_size: int, default_system: str | None = None) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    # Digit runs are split from the preceding space: "16" is then one and the same token after a space, at a line
    # start or after a symbol, so copying a number from the question into the reasoning is an identity map.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=False), pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Numbers 0-199, after a space and at a line start, are seeded so each is one token; so are the words of the
    # teacher's and the neutral text's styles (teacher.py, tasks.neutral_solution), often enough to be merged.
    seeds = [" ".join(str(n) for n in range(200)), "\n".join(str(n) for n in range(200))]
    tok.train_from_iterator(texts + seeds * 50 + [STYLE_WORDS] * 2000, trainer=trainer)
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in FORMAT_TAGS])
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=P.BOS, eos_token=P.EOS, pad_token=P.PAD,
        additional_special_tokens=[P.SYSTEM, P.USER, P.ASSISTANT],
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    hf.chat_template = P.chat_template(default_system)
    return hf

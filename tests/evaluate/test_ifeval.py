"""IFEval with lm-eval's instruction checks, offline: every family has a crafted response that passes and one that
fails; strict vs loose differ where the reference implementation says they should; the real prompt file's
instructions are all known to the registry."""

from __future__ import annotations

import json

import pytest

from scalpel.evaluate import ifeval


def row(iid: str, kwargs: dict | None = None, prompt: str = "Write something.") -> dict:
    return {"key": 1, "prompt": prompt, "instruction_id_list": [iid], "kwargs": [kwargs or {}]}


LOREM = "The quick brown fox jumps over the lazy dog. It was a sunny day. We walked home."

# (instruction id, kwargs, passing response, failing response) -- at least one case per family
CASES = [
    ("keywords:existence", {"keywords": ["tiger", "river"]}, "A tiger swam across the river.", "A cat slept."),
    ("keywords:forbidden_words", {"forbidden_words": ["rock"]}, "Music is great.", "Rock music is great."),
    ("keywords:frequency", {"relation": "at least", "keyword": "story", "frequency": 2},
     "This story is a story.", "This story is short."),
    ("keywords:letter_frequency", {"let_relation": "less than", "letter": "z", "let_frequency": 2},
     "A calm day.", "Zebras zigzag in a zoo."),
    ("detectable_format:title", {}, "<<My Title>>\nSome text.", "My Title\nSome text."),
    ("detectable_format:json_format", {}, '{"a": 1, "b": [2, 3]}', "a is 1"),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* one\n* two", "* one\nplain"),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2},
     "*first part* and *second part*", "*only one*"),
    ("detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": 2},
     "Section 1\nhello\nSection 2\nworld", "Section 1\nhello"),
    ("detectable_format:constrained_response", {}, "My answer is yes.", "Perhaps."),
    ("length_constraints:number_words", {"relation": "at least", "num_words": 10},
     "one two three four five six seven eight nine ten eleven", "too short"),
    ("length_constraints:number_sentences", {"relation": "less than", "num_sentences": 3},
     "Dr. Smith went home. He slept.", LOREM + " A fourth sentence."),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "First para.\n***\nSecond para.",
     "Only one paragraph."),
    ("length_constraints:nth_paragraph_first_word",
     {"first_word": "weekend", "num_paragraphs": 2, "nth_paragraph": 2},
     "Monday was long.\n\nWeekend plans are fun.", "Monday was long.\n\nSaturday plans are fun."),
    ("change_case:english_lowercase", {}, "all of this is lowercase english text.",
     "Some Of This Is Capitalised English Text."),
    ("change_case:english_capital", {}, "ALL OF THIS IS UPPERCASE ENGLISH TEXT.", "Not all caps english text."),
    ("change_case:capital_word_frequency", {"capital_relation": "less than", "capital_frequency": 2},
     "Only ONE word is loud.", "THREE LOUD WORDS here."),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, "Here it is. Any other questions?",
     "Any other questions? Here it is."),
    ("startend:quotation", {}, '"Wrapped in quotes."', "Not wrapped."),
    ("punctuation:no_comma", {}, "No commas here.", "Yes, commas here."),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hello.\nP.S. bye", "Hello. bye"),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name], at [address].",
     "Dear [name]."),
    ("combination:two_responses", {}, "First answer.\n******\nSecond answer.", "Just one answer."),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Say hi."}, "Say hi. Hi!", "Hi! Say hi."),
    ("language:response_language", {"language": "en"},
     "This response is clearly written in the English language for everyone.",
     "Esta respuesta está escrita claramente en español para todos los lectores."),
]


def test_every_family_is_covered():
    families = {iid.split(":")[0] for iid, *_ in CASES}
    assert families == {i.split(":")[0] for i in ifeval.instruction_ids()}
    assert len(ifeval.instruction_ids()) == 25


@pytest.mark.parametrize("iid, kwargs, good, bad", CASES, ids=[c[0] for c in CASES])
def test_instruction_passes_and_fails(iid, kwargs, good, bad):
    item = row(iid, kwargs, prompt="Say hi." if iid == "combination:repeat_prompt" else "Write something.")
    ok = ifeval.score(item, good)
    assert ok.strict and ok.loose and ok.error is None, (iid, good)
    ko = ifeval.score(item, bad)
    assert not ko.strict and not ko.loose, (iid, bad)


def test_loose_forgives_what_the_reference_says_it_forgives():
    # An extra last line breaks end_checker strictly; loose also tries the response without its last line.
    item = row("startend:end_checker", {"end_phrase": "Any other questions?"})
    s = ifeval.score(item, "Here it is. Any other questions?\nThanks for reading")
    assert (s.strict, s.loose) == (False, True)
    # Markdown bold around a JSON answer breaks it strictly; loose also tries the response without asterisks.
    item = row("detectable_format:json_format")
    s = ifeval.score(item, '**{"a": 1}**')
    assert (s.strict, s.loose) == (False, True)


def test_response_is_the_answer_tag_else_without_think():
    assert ifeval.response_text("<think>\nx, y\n</think>\n<answer>\nno commas\n</answer>") == "no commas"
    assert ifeval.response_text("<think>a, b</think>plain text") == "plain text"
    assert ifeval.response_text("<think>unterminated, thinking") == ""
    item = row("punctuation:no_comma")
    assert ifeval.score(item, "<think>a, b, c</think><answer>fine</answer>").strict
    assert not ifeval.score(item, "<think>ok</think>").strict  # empty response never passes


def test_multi_instruction_prompt_level_and_instruction_level():
    item = {"key": 9, "prompt": "p", "instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase"],
            "kwargs": [{}, {}]}
    s = ifeval.score(item, "Hello there")
    assert s.strict_per_instruction == [True, False] and s.strict is False


@pytest.mark.shared
def test_real_ifeval_instructions_are_known(shared_benchmarks):
    known = set(ifeval.instruction_ids())
    rows = [json.loads(line) for line in (shared_benchmarks / "ifeval_input_data.jsonl").read_text().splitlines()]
    assert len(rows) == 541
    assert {i for r in rows for i in r["instruction_id_list"]} <= known
    # and every row scores without a checker error on an ordinary response
    for r in rows:
        assert ifeval.score(r, "<answer>A short reply.</answer>").error is None

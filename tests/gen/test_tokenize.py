"""BOS exactly once, for both prompt styles, on the tiny Gemma-2 and the demo model."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from gen.tokenize import leading_bos_count, prompt_token_ids, tokenizer_adds_bos
from problems.prompts import PromptStyle, render_prompt

TEXT = "Write a function to find the minimum cost path to reach (m, n) from (0, 0)."
TESTS = ["assert min_cost([[1, 2, 3], [4, 8, 2], [1, 5, 3]], 2, 2) == 8"]


@pytest.fixture(scope="module")
def gemma_tok(tiny_gemma2: Path):
    return AutoTokenizer.from_pretrained(tiny_gemma2)


@pytest.mark.parametrize("style", list(PromptStyle))
def test_gemma_prompt_has_exactly_one_bos(gemma_tok, style: PromptStyle) -> None:
    rendered = render_prompt(TEXT, TESTS, style, gemma_tok)
    ids = prompt_token_ids(rendered, gemma_tok, style)
    assert ids[0] == gemma_tok.bos_token_id
    assert ids.count(gemma_tok.bos_token_id) == 1


def test_gemma_chat_template_bos_is_not_doubled(gemma_tok) -> None:
    rendered = render_prompt(TEXT, TESTS, "chat", gemma_tok)
    assert rendered.startswith("<bos>")  # the template writes it, like Gemma's real one
    naive = gemma_tok(rendered)["input_ids"]  # the trap: special tokens added again
    assert leading_bos_count(naive, gemma_tok.bos_token_id) == 2
    ids = prompt_token_ids(rendered, gemma_tok, "chat")
    assert ids == naive[1:]


def test_gemma_raw_matches_plain_tokenization(gemma_tok) -> None:
    rendered = render_prompt(TEXT, TESTS, "raw", gemma_tok)
    assert prompt_token_ids(rendered, gemma_tok, "raw") == gemma_tok(rendered)["input_ids"]


def test_literal_bos_in_raw_text_collapses(gemma_tok) -> None:
    ids = prompt_token_ids("<bos>" + TEXT, gemma_tok, "raw")
    assert leading_bos_count(ids, gemma_tok.bos_token_id) == 1


def test_chat_template_without_bos_gets_one(tiny_gemma2: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_gemma2)
    tok.chat_template = tok.chat_template.replace("{{ bos_token }}", "")
    rendered = render_prompt(TEXT, TESTS, "chat", tok)
    ids = prompt_token_ids(rendered, tok, "chat")
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1


def test_demo_model_follows_its_tokenizer(demo_model: Path) -> None:
    """SmolLM2 declares no BOS for plain text; its BOS (<|im_start|>) opens every chat turn."""
    tok = AutoTokenizer.from_pretrained(demo_model)
    assert not tokenizer_adds_bos(tok)
    raw = prompt_token_ids(render_prompt(TEXT, TESTS, "raw", tok), tok, "raw")
    assert leading_bos_count(raw, tok.bos_token_id) == 0
    assert raw == tok(render_prompt(TEXT, TESTS, "raw", tok))["input_ids"]
    rendered = render_prompt(TEXT, TESTS, "chat", tok)
    chat = prompt_token_ids(rendered, tok, "chat")
    assert leading_bos_count(chat, tok.bos_token_id) == 1
    assert chat == tok(rendered, add_special_tokens=False)["input_ids"]
    assert tok.decode(chat) == rendered  # nothing added or lost

"""Prompt files: loaded by name, versioned, and rejected with a clear message when malformed."""

from __future__ import annotations

import pytest

from prompts import PromptError, load, parse


@pytest.mark.parametrize("name", ["answer", "summary", "followup"])
def test_shipped_prompts_load(name):
    prompt = load(name)
    assert prompt.version and len(prompt.digest) == 12 and prompt.system and "{question}" in prompt.user
    assert prompt.meta == {"prompt": name, "prompt_version": prompt.version, "prompt_digest": prompt.digest}


def test_the_digest_follows_the_wording():
    a = parse("x", "version: 1\n[system]\n甲\n[user]\n{question}")
    b = parse("x", "version: 1\n[system]\n乙\n[user]\n{question}")
    assert a.version == b.version and a.digest != b.digest


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[system]\n甲\n[user]\n乙", "missing 'version:'"),
        ("version: 1\n[user]\n乙", r"missing or empty \[system\]"),
        ("version: 1\nno colon here\n[system]\n甲\n[user]\n乙", "x.md:2: expected 'key: value'"),
    ],
)
def test_malformed_prompts_are_named(text, message):
    with pytest.raises(PromptError, match=message):
        parse("x", text)


def test_unknown_prompt():
    with pytest.raises(PromptError, match="no such prompt"):
        load("nonexistent")

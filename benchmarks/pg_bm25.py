"""BM25 in PostgreSQL against SQLite: the same index in both, every question of a gold set.

    .venv/bin/python benchmarks/pg_bm25.py --index DIR --catalog-url postgresql://... --gold GOLD.jsonl

``--index`` is an index folder and ``--catalog-url`` a server catalog of the same corpus (e.g.
``rag migrate`` of that folder, or the same ``rag ingest``). Prints how many questions get the
same top ``--k`` chunk ids and scores from both (float equality), and each one's p50 time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from rag.index.catalog import Catalog
from rag.index.catalog_pg import PgCatalog
from rag.text.tokens import tokenize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--catalog-url", required=True)
    parser.add_argument("--gold", type=Path, required=True)
    parser.add_argument("--k", type=int, default=30)
    args = parser.parse_args()
    sqlite = Catalog(args.index, create=False, readonly=True)
    pg = PgCatalog(args.catalog_url, readonly=True)
    questions = [json.loads(line)["question"] for line in args.gold.read_text(encoding="utf-8").splitlines() if line.strip()]
    same, ms_sqlite, ms_pg = 0, [], []
    for question in questions:
        tokens = tokenize(question)
        t0 = time.perf_counter()
        want = sqlite.lexical_search(tokens, args.k)
        t1 = time.perf_counter()
        got = pg.lexical_search(tokens, args.k)
        t2 = time.perf_counter()
        same += got == want
        ms_sqlite.append((t1 - t0) * 1000)
        ms_pg.append((t2 - t1) * 1000)
    print(json.dumps({"questions": len(questions), "identical": same, "chunks": sqlite.counts()[1],
                      "p50_ms_sqlite": round(statistics.median(ms_sqlite), 2), "p50_ms_postgres": round(statistics.median(ms_pg), 2)}))
    pg.close()


if __name__ == "__main__":
    main()

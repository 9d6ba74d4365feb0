"""Every bad state of an index on servers is one line: exit 1, no traceback, nothing written.

Server unreachable, wrong password, missing database, a newer schema, a Chroma collection of
another embedding variant, missing privileges (writer and reader), no Chroma server, a URL of
another scheme. Each ``rag`` command runs as a subprocess in an empty folder that must stay empty.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from rag.index.catalog_pg import PgCatalog

from .conftest import ROOT
from .pg_helpers import (
    admin,
    chroma_url,
    server_url,
    with_credentials,
    with_database,
)
from .test_pg_servers import assert_one_line_error, free_port, rag, servers, tables

pytestmark = [pytest.mark.server, pytest.mark.timeout(300)]


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    url = f"postgresql://rag:pw@127.0.0.1:{free_port()}/rag"
    done = rag(tmp_path, "ingest", str(ROOT / "corpus"), **servers(url))
    line = assert_one_line_error(done, "cannot connect to the catalog at postgresql://rag@127.0.0.1:", "refused")
    assert ":pw@" not in line and list(tmp_path.iterdir()) == []


def test_a_wrong_password_is_one_line(tmp_path: Path, pg_url: str) -> None:
    done = rag(tmp_path, "stats", **servers(with_credentials(pg_url, "rag", "wrong-password")))
    line = assert_one_line_error(done, 'password authentication failed for user "rag"')
    assert "wrong-password" not in line and list(tmp_path.iterdir()) == []


def test_a_missing_database_is_one_line(tmp_path: Path) -> None:
    url = with_database(server_url(), "no_such_db_" + uuid.uuid4().hex[:6])
    done = rag(tmp_path, "ingest", str(ROOT / "corpus"), **servers(url))
    assert_one_line_error(done, "database", "does not exist")
    assert list(tmp_path.iterdir()) == []


def test_a_newer_schema_is_one_line(tmp_path: Path, pg_url: str) -> None:
    PgCatalog(pg_url, create=True).close()
    admin(pg_url, "UPDATE meta SET value = '2' WHERE key = 'schema'")
    for command in (["ask", "What share of microelectronics came from China?"], ["ingest", str(ROOT / "corpus")]):
        done = rag(tmp_path, *command, **servers(pg_url))
        assert_one_line_error(done, "has schema 2, this version of rag-cite reads 1; upgrade rag-cite")
    assert tables(pg_url) == ["chunks", "documents", "meta", "pending", "postings", "sentences"]
    assert list(tmp_path.iterdir()) == []


def test_a_collection_of_another_embedding_variant_is_one_line(tmp_path: Path, pg_url: str) -> None:
    import chromadb

    name = "other_" + uuid.uuid4().hex[:8]
    host, port = chroma_url().rsplit(":", 1)
    client = chromadb.HttpClient(host=host.split("//")[1], port=int(port))
    client.create_collection(name, metadata={"hnsw:space": "cosine", "rag:embedding": "all-MiniLM-L6-v2 fp32"})
    catalog = PgCatalog(pg_url, create=True)
    catalog.set_meta("collection", name)
    done = rag(tmp_path, "ingest", str(ROOT / "corpus"), **servers(pg_url))
    assert_one_line_error(done, f"collection {name}", "holds vectors of all-MiniLM-L6-v2 fp32, not all-MiniLM-L6-v2 int8")
    assert catalog.counts() == (0, 0) and client.get_collection(name).count() == 0
    catalog.close()
    client.delete_collection(name)
    assert list(tmp_path.iterdir()) == []


def test_missing_privileges_are_one_line(tmp_path: Path, pg_url: str) -> None:
    role = "weak_" + uuid.uuid4().hex[:6]
    admin(server_url(), f"CREATE ROLE {role} LOGIN PASSWORD 'weak'")
    try:
        weak = with_credentials(pg_url, role, "weak")
        done = rag(tmp_path, "ingest", str(ROOT / "corpus"), **servers(weak))  # may not create tables
        assert_one_line_error(done, "permission denied for schema public")
        assert tables(pg_url) == []
        PgCatalog(pg_url, create=True).close()
        done = rag(tmp_path, "stats", **servers(weak))  # may not read them
        assert_one_line_error(done, "permission denied for table meta")
        assert list(tmp_path.iterdir()) == []
    finally:
        admin(server_url(), f"DROP OWNED BY {role}", f"DROP ROLE {role}")


def test_a_catalog_url_without_a_chroma_server_or_of_another_scheme_is_one_line(tmp_path: Path, pg_url: str) -> None:
    done = rag(tmp_path, "stats", RAG_CATALOG_URL=pg_url)
    assert_one_line_error(done, "RAG_CATALOG_URL needs RAG_CHROMA_URL too")
    done = rag(tmp_path, "stats", RAG_CATALOG_URL="mysql://rag:secret@127.0.0.1/rag")
    line = assert_one_line_error(done, "catalog_url ('mysql://...') must start with postgresql://")
    assert "secret" not in line and tables(pg_url) == [] and list(tmp_path.iterdir()) == []

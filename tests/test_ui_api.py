"""The app's ``/ask`` endpoint through ``gradio_client`` against a live server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.records import Answer
from tests.ui_helpers import FOLLOW_UP, QUESTION, RunningApp, running_app

pytestmark = [pytest.mark.server, pytest.mark.timeout(120)]
client_mod = pytest.importorskip("gradio_client", reason="gradio_client is not installed")
Client = client_mod.Client
AppError = client_mod.exceptions.AppError


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, seed_index_dir: Path, embedder: object) -> Iterator[RunningApp]:
    yield from running_app(tmp_path_factory.mktemp("ui-api"), seed_index_dir, embedder)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def client(app: RunningApp) -> Client:
    return Client(app.url, verbose=False)


def test_ask_returns_the_answer_record_with_verified_citations(client: Client, app: RunningApp) -> None:
    record = client.predict(QUESTION, api_name="/ask")
    answer = Answer.model_validate(record)  # the fields of docs/answer-json.md
    assert answer.short_answer == "90%" and not answer.refused
    assert {"question", "standalone_question", "answer", "short_answer", "refused", "citations", "timings_ms"} <= set(record)
    for c in answer.citations:
        assert app.assistant.document_text(c.source)[c.start : c.end] == c.quote
    assert "90%" in answer.citations[0].quote


def test_follow_up_history_and_filters(client: Client) -> None:
    first = client.predict(QUESTION, api_name="/ask")
    follow = client.predict(
        question=FOLLOW_UP, history=[{"question": first["question"], "answer": first["answer"]}], api_name="/ask"
    )
    assert follow["standalone_question"] != FOLLOW_UP and "microelectronics" in follow["standalone_question"]
    assert follow["citations"]
    old = client.predict(QUESTION, date_to="2000-01-01", api_name="/ask")  # the only document is from 2024
    assert old["refused"] and old["short_answer"] is None
    elsewhere = client.predict(QUESTION, sources=["no-such-document.txt"], api_name="/ask")
    assert elsewhere["refused"]
    one = client.predict(QUESTION, top_k=1, sources=["000_530c0abb2a07a6c4.txt"], api_name="/ask")
    assert len(one["retrieved"]) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"question": "   "}, "question is empty"),
        ({"question": QUESTION, "date_from": "last week"}, "date_from"),
        ({"question": QUESTION, "answerer": "telepathy"}, "unknown answerer"),
    ],
)
def test_user_mistakes_come_back_as_one_line_errors(client: Client, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(AppError, match=message) as caught:
        client.predict(**kwargs, api_name="/ask")
    assert "\n" not in str(caught.value) and "Traceback" not in str(caught.value)


def test_only_the_ask_endpoint_is_public(client: Client) -> None:
    api = client.view_api(return_format="dict", print_info=False)
    assert list(api["named_endpoints"]) == ["/ask"]
    assert not api["unnamed_endpoints"]


def test_readme_example_runs(app: RunningApp, capsys: pytest.CaptureFixture[str]) -> None:
    """The gradio_client example of the README, with this server's URL."""
    from gradio_client import Client

    client = Client(app.url, verbose=False)
    record = client.predict("What share of microelectronics came from China?", api_name="/ask")
    print(record["short_answer"], "|", record["citations"][0]["quote"][:60])
    follow = client.predict(
        "and what did Russia build with them?",
        history=[{"question": record["question"], "answer": record["answer"]}],
        api_name="/ask",
    )
    print(follow["standalone_question"])
    out = capsys.readouterr().out
    assert out.startswith("90% | Evidence of the deepening Sino-Russian partnership")
    assert "What did Russia build with them" in out


def test_login_is_required_when_auth_is_set(tmp_path: Path, seed_index_dir: Path, embedder: object) -> None:
    import httpx

    server = running_app(tmp_path, seed_index_dir, embedder, auth="alice:s3cret")  # type: ignore[arg-type]
    app = next(server)
    try:
        assert httpx.get(app.url + "config").status_code == 401
        with pytest.raises(Exception):  # noqa: B017 - gradio_client raises a plain ValueError or an HTTP error
            Client(app.url, verbose=False, auth=("alice", "wrong"))
        record = Client(app.url, verbose=False, auth=("alice", "s3cret")).predict(QUESTION, api_name="/ask")
        assert record["short_answer"] == "90%"
    finally:
        server.close()


def test_auth_comes_from_settings_or_RAG_UI_AUTH(monkeypatch: pytest.MonkeyPatch, app: RunningApp) -> None:  # noqa: N802
    from rag.errors import ConfigError
    from ui.app import _auth

    monkeypatch.delenv("RAG_UI_AUTH", raising=False)
    assert _auth(app.settings) is None
    assert _auth(app.settings.with_overrides(ui={"auth": "bob:pw:with:colons"})) == ("bob", "pw:with:colons")
    monkeypatch.setenv("RAG_UI_AUTH", "carol:pw")
    assert _auth(app.settings) == ("carol", "pw")
    monkeypatch.setenv("RAG_UI_AUTH", "carol:")
    with pytest.raises(ConfigError):
        _auth(app.settings)

"""Generative answers through llama-index LLM connectors, behind a citation gate.

The model writes; ``rag.answering.llm.gate.gate`` decides what the user sees. The prompt (``rag.answering.llm.prompts``)
numbers the retrieved passages, fences them as data and asks for sentences that carry an exact
supporting quote; the gate keeps only sentences whose quotes verify against the passages, whose
numbers appear in their quotes and that bear on the question (see ``rag.answering.llm.gate``).

A "cannot answer" sentinel with nothing verified becomes a refusal. When nothing, or too little
of the model's answer survives, the extractive answer is returned instead. The record says which
happened: ``details["generation"]`` is ``kept``, ``repaired``, ``fallback`` or ``refused``.
Streaming shows only gated text, a verified sentence at a time (``GenerativeAnswerer.stream``).

Failure policy: a configuration mistake (no model name, missing GGUF file, connector package
not installed) raises ``ConfigError`` when the answerer is built; a server or connection error
while answering is logged and the user gets the extractive answer, with
``details["reason"]`` naming the LLM error.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rag.answering.draft import NO_PASSAGES_TEXT, REFUSAL_TEXT, Draft
from rag.answering.llm import prompts
from rag.answering.llm.gate import Passage, Verdict, clean_condensed, gate, split_claims
from rag.answering.rewrite import is_follow_up, rewrite
from rag.config import LLMSettings, Settings
from rag.domain import Hit
from rag.errors import ConfigError
from rag.records import Turn

logger = logging.getLogger(__name__)

OPENAI_URL = "https://api.openai.com/v1"
GGUF_CONTEXT = 4096

# -- the answerer -------------------------------------------------------------------------------
class ChatLLM(Protocol):
    """The part of a llama-index ``LLM`` this module uses (tests may pass a fake)."""

    def chat(self, messages: Sequence[Any], **kwargs: Any) -> Any: ...

    def stream_chat(self, messages: Sequence[Any], **kwargs: Any) -> Iterator[Any]: ...


class Fallback(Protocol):
    name: str

    def answer(self, question: str, hits: list[Hit], query_vector: np.ndarray) -> Draft: ...


class GenerativeAnswerer:
    """An LLM answer behind the citation gate, with the extractive answer as the fallback."""

    def __init__(
        self,
        llm: ChatLLM,
        name: str,
        fallback: Fallback,
        settings: LLMSettings | None = None,
        closer: Callable[[], None] | None = None,
    ) -> None:
        self.llm = llm
        self.name = name
        self.fallback = fallback
        self.settings = settings or LLMSettings()
        self._closer = closer

    @classmethod
    def from_settings(cls, settings: Settings, fallback: Fallback) -> GenerativeAnswerer:
        """The answerer ``settings.answer.answerer`` names; ConfigError for a bad configuration."""
        kind, llm_settings = settings.answer.answerer, settings.llm
        if kind == "openai":
            url = llm_settings.base_url or OPENAI_URL
            key = os.environ.get(llm_settings.api_key_env)
            if url == OPENAI_URL and not key:
                raise ConfigError(
                    f"the openai answerer needs an API key in ${llm_settings.api_key_env} (RAG_LLM__API_KEY_ENV)"
                )
            llm = _openai_like(url, llm_settings.model, key or "none", llm_settings)
            return cls(llm, f"openai:{llm_settings.model}", fallback, llm_settings)
        if kind == "ollama":
            return cls(_ollama(llm_settings), f"ollama:{llm_settings.model}", fallback, llm_settings)
        if kind == "gguf":
            server = LocalGGUFServer(_gguf_path(llm_settings))
            llm = _openai_like(f"{server.url}/v1", server.alias, "none", llm_settings)
            return cls(llm, f"gguf:{server.alias}", fallback, llm_settings, closer=server.close)
        raise ConfigError(f"answerer {kind!r} is not a generative one (openai, ollama or gguf)")

    def close(self) -> None:
        """Stop the in-process GGUF server, if this answerer started one."""
        if self._closer is not None:
            self._closer()
            self._closer = None

    def messages(self, question: str, hits: list[Hit]) -> list[Any]:
        from llama_index.core.llms import ChatMessage

        body = "\n\n".join(prompts.fence_passage(n, h.source, h.chunk.text) for n, h in enumerate(hits, 1))
        user = prompts.ANSWER_USER.format(passages=body, question=question)
        return [ChatMessage(role="system", content=prompts.ANSWER_SYSTEM), ChatMessage(role="user", content=user)]

    def answer(self, question: str, hits: list[Hit], query_vector: np.ndarray) -> Draft:
        """The gated LLM answer, or the extractive one when the LLM fails or too little verifies."""
        *_, draft = self._generate(question, hits, query_vector, streaming=False)
        assert isinstance(draft, Draft)
        return draft

    def stream(self, question: str, hits: list[Hit], query_vector: np.ndarray) -> Iterator[str | Draft]:
        """Yield the answer text so far, then the ``Draft`` (authoritative).

        Only gated text is ever shown: each time the model finishes a sentence, the sentences
        written so far pass the gate and the verified ones are yielded (the text grows by whole
        sentences). At the end the draft's text is yielded too when it extends what was shown
        (e.g. the extractive fallback when nothing was shown); otherwise the final record
        replaces the streamed text. Raw model text (and whatever a passage injected into it)
        never reaches the user.
        """
        yield from self._generate(question, hits, query_vector, streaming=True)

    def _generate(
        self, question: str, hits: list[Hit], query_vector: np.ndarray, streaming: bool
    ) -> Iterator[str | Draft]:
        if not hits:
            details = {"generation": "refused", "llm": self.name, "reason": "no passages retrieved"}
            yield Draft(NO_PASSAGES_TEXT, None, [], True, 0.0, answerer=self.name, details=details)
            return
        started = time.perf_counter()
        text, shown = "", ""
        try:
            if streaming:
                passages = [Passage.from_hit(h) for h in hits]
                done = 0
                for chunk in self.llm.stream_chat(self.messages(question, hits)):
                    text += getattr(chunk, "delta", None) or ""
                    sentences = split_claims(text)[:-1]  # the last one may be unfinished
                    if len(sentences) > done:
                        done = len(sentences)
                        verified = gate("\n".join(sentences), question, passages).answer
                        if verified and verified != shown and verified.startswith(shown):
                            shown = verified
                            yield shown
            else:
                text = self.llm.chat(self.messages(question, hits)).message.content or ""
        except Exception as e:  # noqa: BLE001 - connectors raise many types; the user still gets an answer
            first_line = str(e).splitlines()[0] if str(e) else ""
            reason = f"LLM error: {type(e).__name__}" + (f": {first_line}" if first_line else "")
            logger.warning("%s failed (%s); answering extractively", self.name, reason)
            draft = self._fallback(question, hits, query_vector, reason, started, Verdict("fallback"))
        else:
            draft = self._judge(text, question, hits, query_vector, started)
        if streaming and draft.answer != shown and draft.answer.startswith(shown):
            yield draft.answer
        yield draft

    def _judge(self, text: str, question: str, hits: list[Hit], query_vector: np.ndarray, started: float) -> Draft:
        logger.debug("%s wrote %r", self.name, text[:2000])
        verdict = gate(text, question, [Passage.from_hit(h) for h in hits])
        if verdict.outcome == "fallback":
            logger.info("%s answer replaced by the extractive one: %s", self.name, verdict.reason)
            return self._fallback(question, hits, query_vector, verdict.reason, started, verdict)
        details = self._details(verdict, started)
        if verdict.outcome == "refused":
            return Draft(REFUSAL_TEXT, None, [], True, 0.0, answerer=self.name, details=details)
        confidence = verdict.kept / verdict.claims if verdict.claims else 0.0
        citations = list(verdict.citations)
        short = verdict.short_answer
        return Draft(verdict.answer, short, citations, False, confidence, answerer=self.name, details=details)

    def _details(self, verdict: Verdict, started: float) -> dict[str, Any]:
        details: dict[str, Any] = {
            "generation": verdict.outcome,
            "llm": self.name,
            "llm_ms": round((time.perf_counter() - started) * 1000, 1),
            "sentences": verdict.claims,
            "dropped_sentences": len(verdict.dropped),
            "dropped_reasons": list(verdict.dropped),
            "repairs": list(verdict.repairs),
        }
        if verdict.reason:
            details["reason"] = verdict.reason
        return details

    def _fallback(
        self, question: str, hits: list[Hit], query_vector: np.ndarray, reason: str, started: float, verdict: Verdict
    ) -> Draft:
        draft = self.fallback.answer(question, hits, query_vector)
        details = {**draft.details, **self._details(replace(verdict, reason=reason), started)}
        return replace(draft, answerer=f"{self.fallback.name}-fallback", details=details)

    def condense(self, question: str, history: list[Turn]) -> str:
        """The follow-up rewritten as a standalone question by the LLM; the rule-based rewrite
        (``rag.answering.rewrite.rewrite``) when the LLM fails or returns something unusable."""
        if not history or not self.settings.condense_followups or not is_follow_up(question):
            return rewrite(question, history)
        from llama_index.core.llms import ChatMessage

        lines = []
        for turn in history[-3:]:
            answer = re.sub(r"\s?\[\d+\]", "", turn.answer)[:300]
            lines.append(f"User: {turn.question}\nAssistant: {answer}")
        user = prompts.CONDENSE_USER.format(history="\n".join(lines), question=question)
        messages = [ChatMessage(role="system", content=prompts.CONDENSE_SYSTEM), ChatMessage(role="user", content=user)]
        try:
            output = self.llm.chat(messages).message.content or ""
        except Exception as e:  # noqa: BLE001 - as in stream(): fall back, never fail the question
            logger.warning("%s could not condense (%s: %s); rewriting by rule", self.name, type(e).__name__, e)
            return rewrite(question, history)
        condensed = clean_condensed(output, question, "\n".join(lines))
        if condensed is None:
            logger.info("%s condensed %r into unusable %r; rewriting by rule", self.name, question, output[:99])
            return rewrite(question, history)
        return condensed


# -- connectors ---------------------------------------------------------------------------------
def _openai_like(url: str, model: str, key: str, s: LLMSettings) -> Any:
    try:
        from llama_index.llms.openai_like import OpenAILike
    except ImportError as e:
        raise ConfigError(
            "the openai and gguf answerers need llama-index-llms-openai-like: pip install 'rag-cite[llm]'"
        ) from e
    return OpenAILike(
        api_base=url, model=model, api_key=key, is_chat_model=True, timeout=s.timeout_s,
        max_tokens=s.max_tokens, temperature=s.temperature, max_retries=1,
    )


def _ollama(s: LLMSettings) -> Any:
    if s.model in ("", "default"):
        raise ConfigError("the ollama answerer needs a model name: set RAG_LLM__MODEL, e.g. RAG_LLM__MODEL=llama3.2")
    try:
        from llama_index.llms.ollama import Ollama
    except ImportError as e:
        raise ConfigError("the ollama answerer needs llama-index-llms-ollama: pip install 'rag-cite[llm]'") from e
    return Ollama(
        model=s.model, base_url=s.ollama_url, temperature=s.temperature, request_timeout=s.timeout_s,
        additional_kwargs={"num_predict": s.max_tokens},
    )


def _gguf_path(s: LLMSettings) -> Path:
    if s.gguf_path is None:
        raise ConfigError("the gguf answerer needs a model file: set RAG_LLM__GGUF_PATH=/path/to/model.gguf")
    path = Path(s.gguf_path).expanduser()
    if not path.is_file():
        raise ConfigError(f"RAG_LLM__GGUF_PATH ({path}) is not a file")
    return path


class LocalGGUFServer:
    """llama.cpp's OpenAI-compatible HTTP server (xllamacpp) on 127.0.0.1, inside this process.

    llama-index talks to it through ``OpenAILike`` like to any other server, so the gguf answerer
    needs no source build of llama-cpp-python.
    """

    def __init__(self, path: Path, n_ctx: int = GGUF_CONTEXT, threads: int | None = None) -> None:
        try:
            import xllamacpp
        except ImportError as e:
            raise ConfigError("the gguf answerer needs xllamacpp: pip install xllamacpp") from e
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # the OS picks a free port
        params.n_ctx = n_ctx
        params.n_parallel = 1
        params.verbosity = 0
        # Half the cores and no busy-polling: on a shared machine spinning threads slow it 3-4x.
        n = threads or max(1, min(4, (os.cpu_count() or 2) // 2))
        for cpu in (params.cpuparams, params.cpuparams_batch):
            cpu.n_threads = n
            cpu.poll = 0
        self.alias = path.stem
        try:
            self._server: Any = xllamacpp.Server(params)
        except Exception as e:  # noqa: BLE001 - the extension raises plain RuntimeErrors
            raise ConfigError(f"could not serve {path}: {e}") from e
        self.url: str = self._server.listening_address
        logger.info("serving %s at %s", path.name, self.url)

    def close(self) -> None:
        """Stop the server (its destructor joins llama.cpp's threads)."""
        self._server = None

"""llama-index interop: the hybrid retriever as a ``BaseRetriever``.

Each result is a ``NodeWithScore`` whose ``TextNode`` carries the chunk text and its exact
``start_char_idx``/``end_char_idx`` in the source document, so llama-index users can plug it
into their own query engines and still cite exact spans.
"""

from __future__ import annotations

from collections.abc import Callable

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import (
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
)

from rag.query import Query
from rag.retrieval.hybrid import Retriever


class HybridRetriever(BaseRetriever):
    """Dense + BM25 retrieval fused with RRF, returning nodes with exact character offsets.

    ``make_query`` turns the query string into a ``Query`` (embedded, with the filters and
    ``top_k`` to use): ``Assistant.as_llamaindex_retriever`` passes its own ``Assistant.query``.
    """

    def __init__(self, retriever: Retriever, make_query: Callable[[str], Query]) -> None:
        super().__init__()
        self._retriever = retriever
        self._make_query = make_query

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self._retriever.retrieve(self._make_query(query_bundle.query_str))
        titles = {d.id: d for d in self._retriever.index.documents()} if hits else {}
        nodes = []
        for hit in hits:
            chunk = hit.chunk
            info = titles.get(chunk.doc_id)
            node = TextNode(
                id_=chunk.id,
                text=chunk.text,
                start_char_idx=chunk.start,
                end_char_idx=chunk.end,
                metadata={
                    "source": hit.source,
                    "doc_id": chunk.doc_id,
                    "title": info.title if info else "",
                    "date": info.date if info else None,
                },
                # Offsets and ids are for citing, not for the LLM to read.
                excluded_llm_metadata_keys=["doc_id", "date"],
                excluded_embed_metadata_keys=["doc_id", "date", "source", "title"],
            )
            node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=chunk.doc_id)
            nodes.append(NodeWithScore(node=node, score=hit.score))
        return nodes

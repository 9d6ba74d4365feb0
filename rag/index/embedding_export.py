"""Export a sentence-transformers model to ONNX for ``rag.index.embedding.OnnxEmbedder``.

The whole sentence-transformers pipeline (transformer, pooling, normalisation) becomes one ONNX
graph whose output is the sentence embedding, so the runtime needs no pooling code. For BERT
models, ONNX Runtime's transformer optimiser fuses attention, layer norms and GELU. The ``int8``
variant is that graph with dynamic per-channel int8 weights. The export checks itself against
sentence-transformers on a few texts and writes ``embedding.json`` last: a folder without it is
incomplete. It is written to a temporary folder and renamed into place, so concurrent exports
of the same model are safe.

This is the only module of the package that imports torch and sentence-transformers; the
embedder runs it in a child process::

    python -m rag.index.embedding_export MODEL_FOLDER --variant fp32 --out FOLDER
    python -m rag.index.embedding_export --default   # the packaged MiniLM, both variants, into the cache
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from rag.domain import file_sha256
from rag.index.embedding import (
    EXPORT_FORMAT,
    META_FILE,
    VARIANTS,
    default_cache_dir,
    export_dir,
    prune_stale_exports,
    resolve_model,
)

logger = logging.getLogger(__name__)

CHECK_TEXTS = [
    "What share of microelectronics came from China?",
    "x",
    "Ünïcödé, 漢字 and 🙂 in one question?",
    "word " * 400,
    "U.S. officials: 90% of imports, $1.2bn, 2023-04-13.",
]
# Cosine to sentence-transformers' own vectors below which an export is rejected.
MIN_COSINE = {"fp32": 0.99999, "int8": 0.95}


def export(source: Path, variant: str, out: Path) -> dict[str, object]:
    """Write model.onnx, tokenizer.json and embedding.json for ``source`` to ``out``."""
    import torch
    from sentence_transformers import SentenceTransformer

    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r} must be one of {', '.join(VARIANTS)}")
    # Eager attention traces to plain MatMul/Softmax, which the optimiser fuses into Attention.
    model = SentenceTransformer(str(source), device="cpu", model_kwargs={"attn_implementation": "eager"})
    model.eval()
    tokenizer = model.tokenizer
    sample = tokenizer(["a short text", "and a somewhat longer one"], padding=True, return_tensors="pt")
    inputs = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

    class Pipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.model(dict(zip(inputs, tensors)))["sentence_embedding"]

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        raw = tmp / "raw.onnx"
        with torch.no_grad():
            torch.onnx.export(
                Pipeline(), tuple(sample[n] for n in inputs), str(raw), input_names=inputs,
                output_names=["sentence_embedding"],
                dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in inputs}, "sentence_embedding": {0: "batch"}},
                opset_version=17, dynamo=False,
            )
        fused = _optimise(raw, model)
        final = tmp / "model.onnx"
        if variant == "int8":
            _quantise(fused, final)
        else:
            fused.replace(final)
        for p in tmp.glob("*.onnx*"):
            if p != final:
                p.unlink()
        tok_dir = tmp / "tok"
        tokenizer.save_pretrained(str(tok_dir))
        shutil.copy(tok_dir / "tokenizer.json", tmp / "tokenizer.json")
        shutil.rmtree(tok_dir)
        if model.max_seq_length is None:  # every sentence-transformers model of ours states one
            raise ValueError(f"{source}: the model states no max_seq_length")
        meta: dict[str, object] = {
            "format": EXPORT_FORMAT, "variant": variant, "source": str(source),
            "max_seq_length": int(model.max_seq_length), "dimension": int(_dimension(model)),
            "inputs": inputs, "output": "sentence_embedding", "model_sha256": file_sha256(final),
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        meta["min_cosine_to_sentence_transformers"] = round(_check(model, tmp, variant), 6)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        try:
            os.rename(tmp, out)
        except OSError:  # another process finished the same export first: keep theirs
            if not (out / META_FILE).is_file():
                raise
        return meta
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _dimension(model: object) -> int:
    get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension  # type: ignore[attr-defined]
    return int(get())


def _optimise(raw: Path, model: object) -> Path:
    """Fuse attention, layer norm and GELU for BERT models; other models go as exported."""
    config = model[0].auto_model.config  # type: ignore[index]
    if getattr(config, "model_type", "") != "bert":
        return raw
    from onnxruntime.transformers.optimizer import optimize_model

    fused = raw.with_name("fused.onnx")
    optimized = optimize_model(str(raw), model_type="bert", num_heads=config.num_attention_heads,
                               hidden_size=config.hidden_size)
    optimized.save_model_to_file(str(fused))
    return fused


def _quantise(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Per-channel weights, and the fused attention (its Q/K/V projection) left in fp32: mean cosine
    # to fp32 on SQuAD sentences 0.9954, against 0.9938 with attention quantised too and 0.960
    # per-tensor. ``MatMul`` covers the attention output and both feed-forward projections.
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"],
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def _check(model: object, folder: Path, variant: str) -> float:
    """The smallest cosine between this export's vectors and sentence-transformers' own."""
    from rag.index.embedding import OnnxEmbedder

    probe = OnnxEmbedder(variant=variant)
    probe._open(folder)
    got = probe.embed(CHECK_TEXTS)
    want = model.encode(CHECK_TEXTS, normalize_embeddings=True, convert_to_numpy=True)  # type: ignore[attr-defined]
    cosine = float(np.min(np.sum(got * want, axis=1)))
    if cosine < MIN_COSINE[variant]:
        raise RuntimeError(f"the {variant} export differs from sentence-transformers (cosine {cosine:.5f})")
    return cosine


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.ERROR, format="%(message)s")
    warnings.filterwarnings("ignore")  # the tracer's and quantiser's advice is for model authors
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?", default="", help="model folder or cached hub id; empty = the packaged MiniLM")
    ap.add_argument("--variant", choices=VARIANTS, default="fp32")
    ap.add_argument("--out", help="export folder; default: the cache folder the embedder looks in")
    ap.add_argument("--default", action="store_true", help="export the packaged model in both variants to the cache")
    args = ap.parse_args(argv)
    jobs = [("", v, None) for v in VARIANTS] if args.default else [(args.model, args.variant, args.out)]
    try:
        for model, variant, out in jobs:
            source = resolve_model(model)
            target = Path(out) if out else export_dir(source, variant, default_cache_dir())
            if (target / META_FILE).is_file():
                print(f"{target}: already exported")
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            meta = export(source, variant, target)
            if not out:
                prune_stale_exports(target)
            print(f"{target}: {variant}, cosine to sentence-transformers >= {meta['min_cosine_to_sentence_transformers']}")
    except Exception as e:  # one line for the parent process to report
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

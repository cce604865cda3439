"""A tiny randomly initialised Qwen2.5-VL model, built offline for the transformers engine's tests.

Real architecture, real tokenizer machinery, real image processor and the real Qwen2-VL chat
template; only the sizes are tiny (hidden size 64, 2 layers, vision depth 2) and the weights are
random, so the text it writes is nonsense but every code path of a real model is exercised.
Nothing is downloaded: the byte-level BPE tokenizer is trained here on benchmark lines.
"""

from pathlib import Path

#: Qwen2's special tokens, in the order (and so with the id offsets) the real tokenizer has them.
QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

#: The chat template Qwen2-VL / Qwen2.5-VL instruct models ship (chat_template.json).
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: Lines the tokenizer learns from when the benchmark is not at hand.
FALLBACK_LINES = [
    "Alphabetisches Verzeichnis der Bewohner. 37",
    "Förster, Christian, Fabrikmeister, Großkölnstraße A 391.",
    "Müller, Peter Joseph, Bäcker, Hochstraße 12.",
    "Schmitz, Anna Maria, Kauffrau, Marktstraße 7.",
    "You are transcribing one scanned page of a historical printed book, often set in Fraktur.",
]


def training_lines(benchmark_dir: Path | None) -> list[str]:
    """Benchmark ground-truth lines (sorted files, so the tokenizer is the same every time)."""
    lines = list(FALLBACK_LINES)
    folder = benchmark_dir / "ground_truth" / "txt" if benchmark_dir else None
    if folder and folder.is_dir():
        for path in sorted(folder.glob("*.txt")):
            lines.extend(path.read_text(encoding="utf-8").splitlines()[:200])
    return lines


def build_tokenizer(lines: list[str], vocab_size: int = 600):  # type: ignore[no-untyped-def]
    """A byte-level BPE tokenizer with Qwen's special tokens, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=QWEN_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(lines, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        model_max_length=32768,
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
    )


def tiny_config(tokenizer, vocab_size: int):  # type: ignore[no-untyped-def]
    """A Qwen2.5-VL configuration of toy size whose special-token ids match `tokenizer`."""
    from transformers import Qwen2_5_VLConfig

    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN_SPECIAL_TOKENS}
    text_config = {
        "vocab_size": vocab_size,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "initializer_range": 0.5,
        # head_dim 16 → 8 rotary frequencies, split over (time, height, width).
        "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }
    vision_config = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "out_hidden_size": 64,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": [1],
    }
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


def build_tiny_qwen2_vl(
    path: Path, *, benchmark_dir: Path | None = None, seed: int = 0, eos_scale: float = 3.0
) -> Path:
    """Write a tiny random Qwen2.5-VL (model, tokenizer, processor, template) to `path`.

    `eos_scale` > 1 makes the end-of-sequence token likelier, so that some answers stop by
    themselves (a random model otherwise rarely ends an answer).
    """
    import torch
    from transformers import (
        GenerationConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = build_tokenizer(training_lines(benchmark_dir))
    vocab_size = len(tokenizer)
    config = tiny_config(tokenizer, vocab_size)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    with torch.no_grad():
        model.lm_head.weight[tokenizer.eos_token_id] *= eos_scale
    model.generation_config = GenerationConfig(
        bos_token_id=config.text_config.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, tokenizer.pad_token_id],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    # Few pixels, so that a page becomes a handful of visual tokens and tests stay fast.
    pixels = {"min_pixels": 28 * 28 * 4, "max_pixels": 28 * 28 * 64}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**pixels),
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path

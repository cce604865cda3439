"""What the local vision-language engines share: chat messages, page images, the model's place.

Both local engines (`transformers`, `vllm`) render the same messages (Qwen2-VL style content
parts) through the model's own chat template, so one request reads the same to the model
whichever engine runs it.
"""

from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import Field
from pydantic_settings import BaseSettings

from models.base import EngineError, EngineNotAvailable, EngineRequest
from models.spec import EngineFactory, EngineSpec, Parameter

#: How requests are laid out in the local engines' chat messages (recorded like a prompt).
LOCAL_MESSAGE_FORMAT = "qwen2-vl-chat-v1"


class LocalModelSettings(BaseSettings):
    """A vision-language model run inside a GPU worker (transformers or vLLM)."""

    #: The name recorded with results (e.g. Qwen/Qwen2.5-VL-7B-Instruct).
    model: str = ""
    #: Where the weights are on this machine; nothing is downloaded at run time.
    model_path: str | None = None
    max_new_tokens: int = Field(default=4096, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    image_max_side: int = Field(default=1288, ge=64)
    dtype: str = "auto"
    batch_size: int = Field(default=8, ge=1)


def config_values(
    config_type: type, parameters: Mapping[str, Any], environment: Mapping[str, Any]
) -> dict[str, Any]:
    """A local engine's config fields: the run's parameters for what decides the output, this
    machine's environment for the rest (model folder, device, memory); None means unset."""
    names = {f.name for f in fields(config_type)}
    run_parameters = {p.name for p in LOCAL_MODEL_PARAMETERS} | {"seed"}
    values = {k: v for k, v in environment.items() if k in names - run_parameters}
    values.update({k: v for k, v in parameters.items() if k in names & run_parameters})
    return {k: v for k, v in values.items() if v is not None}


#: The run parameters both local engines take.
LOCAL_MODEL_PARAMETERS = (
    Parameter(
        "model", str, "the model's name (its weights: HISTOCR_<ENGINE>_MODEL_PATH)", cli="--model"
    ),
    Parameter("max_new_tokens", int, "most tokens an answer may have", minimum=1),
    Parameter("temperature", float, "sampling temperature (0: greedy)", minimum=0, maximum=2),
    Parameter(
        "image_max_side",
        int,
        "longest side of the page image given to the model, in pixels",
        minimum=64,
        maximum=10000,
        cli="--image-max-side",
    ),
    Parameter(
        "repetition_penalty", float, "penalty on repeated tokens (empty: the model's)", minimum=0
    ),
)

#: The content part that stands for the page image; the template turns it into vision tokens.
IMAGE_PART: dict[str, Any] = {"type": "image"}


def delimited_text(text: str) -> str:
    """The input text (an OCR result to correct, a page to extract from), marked off."""
    return f"<text>\n{text}\n</text>"


def chat_messages(
    request: EngineRequest, *, image_part: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """System message (optional), then one user turn: prompt, page image, delimited text.

    The same layout the `openai` engine sends, so a model served by `vllm serve` and the same
    model run in-process see the same prompt. Without an image the user turn is one string.
    """
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    prompt = request.prompt or ""
    text = None if request.text is None else delimited_text(request.text)
    if image_part is None:
        if not prompt and text is None:
            raise EngineError("the request has no prompt, image or text", retryable=False)
        content = "\n\n".join(part for part in (prompt, text) if part)
        messages.append({"role": "user", "content": content})
        return messages
    parts: list[dict[str, Any]] = [{"type": "text", "text": prompt}] if prompt else []
    parts.append(dict(image_part))
    if text is not None:
        parts.append({"type": "text", "text": text})
    messages.append({"role": "user", "content": parts})
    return messages


def load_page_image(path: Path, max_side: int | None) -> Image.Image:
    """The page as RGB, shrunk (never enlarged) so its longest side is at most `max_side`."""
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise EngineError(f"cannot read page image {path.name}: {exc}", retryable=False) from exc
    return fit_longest_side(image, max_side)


def fit_longest_side(image: Image.Image, max_side: int | None) -> Image.Image:
    """`image` scaled down so its longest side is `max_side` (aspect ratio kept)."""
    longest = max(image.size)
    if not max_side or longest <= max_side:
        return image
    scale = max_side / longest
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def model_source(model: str, model_path: str | None = None) -> str:
    """The folder to load from, or a hub id; a folder that is not a saved model is an error."""
    source = model_path or model
    hub_id = not source.startswith((".", "/", "~")) and source.count("/") <= 1
    if hub_id and not Path(source).exists():
        return source
    folder = Path(source).expanduser()
    if not (folder / "config.json").is_file():
        raise EngineNotAvailable(
            f"model folder {folder} not found or has no config.json "
            "(save a model there with save_pretrained, or name a hub id)"
        )
    return str(folder)


def local_model_spec(
    *,
    name: str,
    description: str,
    create: EngineFactory,
    settings: type[BaseSettings],
    batch_size: int,
    parameters: tuple[Parameter, ...] = LOCAL_MODEL_PARAMETERS,
) -> EngineSpec:
    """The spec of a vision-language model run inside a `gpu` worker: every stage, prompted."""
    return EngineSpec(
        name=name,
        description=description,
        stages=("ocr", "correct", "extract"),
        queue="gpu",
        create=create,
        settings=settings,
        batch_size=batch_size,
        prompted=True,
        message_format=LOCAL_MESSAGE_FORMAT,
        needs_model=True,
        extract_inputs=("text", "image", "both"),
        parameters=parameters,
    )

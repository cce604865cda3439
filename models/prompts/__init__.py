"""Versioned prompt files: `<stage>-<version>.txt`; a changed prompt is a new file."""

from dataclasses import dataclass
from pathlib import Path

PROMPT_DIR = Path(__file__).parent


@dataclass(frozen=True)
class Prompt:
    """A prompt's text and the version recorded with every result it produced."""

    stage: str
    version: str
    text: str


def load_prompt(stage: str, version: str) -> Prompt:
    """Read `<stage>-<version>.txt`; unknown versions are an error, never a fallback."""
    path = PROMPT_DIR / f"{stage}-{version}.txt"
    if not path.is_file():
        known = sorted(p.stem for p in PROMPT_DIR.glob(f"{stage}-*.txt"))
        raise ValueError(f"no prompt {stage!r} version {version!r} (known: {', '.join(known)})")
    return Prompt(stage=stage, version=version, text=path.read_text(encoding="utf-8").strip())


def latest_version(stage: str) -> str:
    """The newest version of a stage's prompt (versions are `v1`, `v2`, …)."""
    versions = [p.stem.split("-", 1)[1] for p in PROMPT_DIR.glob(f"{stage}-v*.txt")]
    if not versions:
        raise ValueError(f"no prompt for stage {stage!r}")
    return max(versions, key=lambda v: int(v.lstrip("v")))

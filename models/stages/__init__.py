"""Stages own prompts, schemas and output parsing; engines only turn requests into results."""

from models.stages.base import PageInput, StageOutput, StageOutputInvalid, StageSpec
from models.stages.runner import build_requests, parse_result

STAGES = ("ocr", "correct", "extract")
TEXT_STAGES = ("ocr", "correct")

__all__ = [
    "STAGES",
    "TEXT_STAGES",
    "PageInput",
    "StageOutput",
    "StageOutputInvalid",
    "StageSpec",
    "build_requests",
    "parse_result",
]

"""Whether ground truth belongs where it is attached: by file name, and by its text.

Ground truth attached in bulk is matched to the project's documents by file name
(`type-1.txt` and `type-1.gt.csv` → `type-1.pdf`). A transcription whose text plainly does not
belong to its document (another document's, a file picked by mistake) would silently ruin the
scores, so before it is attached it is compared with the latest finished run's text of that
document or page: above `MISMATCH_CER` the attach is refused with a 409 that the client can
repeat with `confirm=true`.

The threshold is measured on the benchmark (../shared/benchmark, types 1–5, normalized CER):
the right ground truth scores at most 0.48 against the worst OCR there (the paper's Tesseract),
another document's ground truth at least 0.70 (0.70–1.78 over all 20 wrong pairs; 0.90 would
let 11 of them through). 0.65 lies between; partial ground truth of a long document (one page of
ten, attached to the whole document) is above it as well, and is worth the question.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.tables import Document, Run, RunStatus, run_documents
from app.errors import Conflict, InvalidUpload
from app.metrics.text import score_text
from app.pipeline.evaluation import document_text, page_texts

#: Above this normalized CER against the run's text, ground truth asks for confirmation.
MISMATCH_CER = 0.65
#: Runs whose text ground truth is compared with.
FINISHED = (RunStatus.DONE, RunStatus.PARTIAL)
#: Characters of ground truth compared at most (the run's text is cut in proportion): the
#: comparison is quadratic, and a few pages tell whether a text belongs.
SAMPLE = 20_000
#: Endings a ground-truth file name may carry besides the document's name.
_MARKERS = (".gt", "_gt", "-gt", ".ground-truth", "_ground_truth", "-ground-truth")
#: Finished runs looked at, newest first, for one that has text of the document.
_RUNS_TRIED = 5


class GroundTruthMismatch(Conflict):
    """Ground truth that reads like another text than its document's: attach it only if the
    client confirms. The answer carries the CER and the run it was measured against."""

    def __init__(self, message: str, mismatches: list[dict[str, object]]) -> None:
        super().__init__(message)
        self.mismatches = mismatches

    @property
    def extra(self) -> dict[str, object]:
        """`mismatches`: per file, the CER against which run's text."""
        return {"mismatches": self.mismatches}


@dataclass(frozen=True)
class Mismatch:
    """How far a transcription is from the run's text of its document or page."""

    cer: float
    run_id: int


def text_mismatch(
    session: Session, document: Document, content: str, page_id: int | None = None
) -> Mismatch | None:
    """The CER of `content` against the latest finished run's text of the document (or page)
    where it is above MISMATCH_CER; None where it fits or there is no text to compare with."""
    found = _run_text(session, document, page_id)
    if found is None:
        return None
    run_id, text = found
    reference = content[:SAMPLE]
    hypothesis = text[: max(1, round(len(text) * len(reference) / max(len(content), 1)))]
    cer = score_text(reference, hypothesis).cer_normalized.rate
    return Mismatch(cer, run_id) if cer > MISMATCH_CER else None


def mismatch_message(name: str, document: Document, mismatch: Mismatch) -> str:
    """What the 409 says about one file."""
    return (
        f"{name} does not look like the text of {document.filename}: its CER against run "
        f"{mismatch.run_id}'s transcription is {mismatch.cer:.0%} (above "
        f"{MISMATCH_CER:.0%}); send it again with confirm=true to attach it anyway"
    )


def _run_text(session: Session, document: Document, page_id: int | None) -> tuple[int, str] | None:
    """The newest finished run's final text of the document (or page), where one has any."""
    runs = session.scalars(
        select(Run)
        .join(run_documents, run_documents.c.run_id == Run.id)
        .where(run_documents.c.document_id == document.id, Run.status.in_(FINISHED))
        .order_by(Run.id.desc())
        .limit(_RUNS_TRIED)
    )
    for run in runs:
        texts = page_texts(
            session, run, run.config.final_text_stage, document_id=document.id, version="latest"
        )
        if page_id is not None:
            text = texts.get(page_id) or ""
        else:
            text = document_text(document.pages, texts)
        if text.strip():
            return run.id, text
    return None


def document_key(name: str) -> str:
    """A file name as it is matched to a document's: without extension, marker or case."""
    stem = PurePath(name).stem.casefold()
    for marker in _MARKERS:
        if stem.endswith(marker) and len(stem) > len(marker):
            return stem[: -len(marker)]
    return stem


def match_files(documents: Sequence[Document], names: Sequence[str]) -> list[Document]:
    """The document each file is for, by name; every file must name exactly one document."""
    by_key: dict[str, list[Document]] = {}
    for document in documents:
        by_key.setdefault(document_key(document.filename), []).append(document)
    matched: list[Document] = []
    unmatched: list[str] = []
    for name in names:
        candidates = by_key.get(document_key(name), [])
        if len(candidates) > 1:
            listed = ", ".join(f"{d.filename} (document {d.id})" for d in candidates)
            raise InvalidUpload(
                f"{name}: more than one document has this name ({listed}); attach it to one "
                "of them with POST /api/v1/documents/{id}/ground-truth"
            )
        if candidates:
            matched.append(candidates[0])
        else:
            unmatched.append(name)
    if unmatched:
        known = ", ".join(d.filename for d in documents[:10]) or "none"
        raise InvalidUpload(
            f"no document of the project is named like {', '.join(unmatched)} (a file "
            f"type-1.txt or type-1.csv goes with type-1.pdf; documents: {known})"
        )
    return matched

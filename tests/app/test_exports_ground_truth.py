"""Ground truth in (issue 12 §3): what German Excel saves is read, files are matched to their
documents by name in bulk, and a transcription that plainly is another text than its
document's asks for confirmation instead of replacing the previous one.
"""

import csv
import io

from app.db.session import session_scope
from app.db.tables import Document, Project
from app.metrics.records import read_records_csv
from app.services.truth_match import MISMATCH_CER
from tests.app import test_exports
from tests.app.test_exports import API, FIELDS, store_run
from tests.conftest import benchmark_file

#: The stored run of tests/app/test_exports.py: two documents, finished, with lines and records.
seeded = test_exports.seeded


def truth_text(name: str) -> str:
    return benchmark_file("ground_truth", "txt", f"{name}.txt").read_text()


def excel_de(name: str) -> bytes:
    """The benchmark's records CSV as German Excel saves it: semicolons, CRLF, a BOM."""
    rows = list(
        csv.reader(io.StringIO(benchmark_file("ground_truth", "csv", f"{name}.csv").read_text()))
    )
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=";", lineterminator="\r\n").writerows(rows)
    return "\ufeff".encode() + buffer.getvalue().encode("utf-8")


def attach(client, document_id: int, name: str, content: bytes, **params):
    return client.post(
        f"{API}/documents/{document_id}/ground-truth",
        files={"file": (name, content, "text/plain")},
        params=params,
    )


def listed(client, document_id: int) -> list[dict]:
    answer = client.get(f"{API}/documents/{document_id}/ground-truth")
    assert answer.status_code == 200
    return answer.json()


def test_a_semicolon_csv_with_bom_is_read_into_the_right_fields(seeded):
    data = excel_de("type-1")
    fields, records = read_records_csv(data.decode("utf-8"), list(FIELDS))
    expected = list(
        csv.DictReader(io.StringIO(benchmark_file("ground_truth", "csv", "type-1.csv").read_text()))
    )
    assert fields == list(FIELDS) and len(records) == len(expected)
    assert records[0] == {name: expected[0][name] for name in FIELDS}
    assert records[0]["surname"] == "Förster"

    document = seeded.documents["type-1.pdf"]
    answer = attach(seeded.client, document, "type-1.csv", data)
    assert answer.status_code == 201, answer.text
    scored = seeded.client.post(f"{API}/runs/{seeded.run_id}/evaluate")
    assert scored.status_code == 201, scored.text
    documents = scored.json()["records"]["documents"]
    (scores,) = [d for d in documents if d["document_id"] == document]
    # The run's records were read from the same lines: every reference record is found.
    assert scores["records"]["reference"] == len(expected)
    assert scores["records"]["recall"] > 0.95


def test_ground_truth_is_attached_in_bulk_by_file_name(seeded):
    files = [
        ("files", ("type-1.txt", truth_text("type-1").encode(), "text/plain")),
        ("files", ("type-2.gt.txt", truth_text("type-2").encode(), "text/plain")),
        ("files", ("type-1.csv", excel_de("type-1"), "text/csv")),
    ]
    answer = seeded.client.post(f"{API}/projects/{seeded.project_id}/ground-truth", files=files)
    assert answer.status_code == 201, answer.text
    attached = {(t["filename"], t["document_id"], t["kind"]) for t in answer.json()}
    one, two = seeded.documents["type-1.pdf"], seeded.documents["type-2.pdf"]
    assert attached == {
        ("type-1.txt", one, "text"),
        ("type-2.gt.txt", two, "text"),
        ("type-1.csv", one, "records"),
    }
    assert {t["kind"] for t in listed(seeded.client, one)} == {"text", "records"}
    again = seeded.client.post(f"{API}/projects/{seeded.project_id}/ground-truth", files=files)
    assert again.status_code == 200  # nothing new: every file is the current version already


def test_a_file_that_names_no_document_attaches_nothing(seeded):
    files = [
        ("files", ("type-1.txt", truth_text("type-1").encode(), "text/plain")),
        ("files", ("type-9.txt", truth_text("type-3").encode(), "text/plain")),
    ]
    answer = seeded.client.post(f"{API}/projects/{seeded.project_id}/ground-truth", files=files)
    assert answer.status_code == 422
    assert "type-9.txt" in answer.json()["detail"]
    assert listed(seeded.client, seeded.documents["type-1.pdf"]) == []


def test_another_documents_text_asks_for_confirmation(seeded):
    document = seeded.documents["type-1.pdf"]
    wrong = truth_text("type-2").encode()
    answer = attach(seeded.client, document, "type-1.txt", wrong)
    assert answer.status_code == 409, answer.text
    body = answer.json()
    assert "confirm=true" in body["detail"]
    (mismatch,) = body["mismatches"]
    assert mismatch["run_id"] == seeded.run_id and mismatch["cer"] > MISMATCH_CER
    assert listed(seeded.client, document) == []
    forced = attach(seeded.client, document, "type-1.txt", wrong, confirm="true")
    assert forced.status_code == 201, forced.text
    again = attach(seeded.client, document, "type-1.txt", wrong)  # the current version: no question
    assert again.status_code == 200 and again.json()["id"] == forced.json()["id"]

    # A page's transcription is compared with that page's text.
    page_two = seeded.texts[("type-1.pdf", 2)]
    right = seeded.client.post(
        f"{API}/documents/{document}/ground-truth",
        files={"file": ("p2.txt", page_two.encode(), "text/plain")},
        data={"page": "2"},
    )
    assert right.status_code == 201, right.text
    swapped = seeded.client.post(
        f"{API}/documents/{document}/ground-truth",
        files={"file": ("p1.txt", truth_text("type-4").encode(), "text/plain")},
        data={"page": "1"},
    )
    assert swapped.status_code == 409, swapped.text

    # In bulk, files of other documents under these names: nothing is attached until confirmed.
    files = [
        ("files", ("type-1.txt", truth_text("type-3").encode(), "text/plain")),
        ("files", ("type-2.txt", truth_text("type-1").encode(), "text/plain")),
    ]
    path = f"{API}/projects/{seeded.project_id}/ground-truth"
    refused = seeded.client.post(path, files=files)
    assert refused.status_code == 409
    assert {m["file"] for m in refused.json()["mismatches"]} == {"type-1.txt", "type-2.txt"}
    assert listed(seeded.client, seeded.documents["type-2.pdf"]) == []
    assert seeded.client.post(path, files=files, params={"confirm": "true"}).status_code == 201


def test_poor_ocr_of_the_right_document_is_no_mismatch(seeded):
    """The benchmark's worst OCR (the paper's Tesseract, CER 0.48 normalized) of type-1, and the
    right ground truth: attached without a question; another document's is refused."""
    ocr = benchmark_file("reference_outputs", "tesseract-paper", "type-1.txt").read_text()
    with session_scope(seeded.settings.resolved_database_url) as session:
        project = session.get_one(Project, seeded.project_id)
        document = session.get_one(Document, seeded.documents["type-1.pdf"])
        lines = ocr.split("\n")
        half = len(lines) // 2
        texts = dict(
            zip(
                [p.id for p in document.pages],
                ["\n".join(lines[:half]), "\n".join(lines[half:])],
                strict=True,
            )
        )
        store_run(session, project, [document], texts)
    document_id = seeded.documents["type-1.pdf"]
    right = attach(seeded.client, document_id, "type-1.txt", truth_text("type-1").encode())
    assert right.status_code == 201, right.text
    for other in ("type-2", "type-3", "type-4", "type-5"):
        wrong = attach(seeded.client, document_id, f"{other}.txt", truth_text(other).encode())
        assert wrong.status_code == 409, (other, wrong.text)


def test_the_delimiter_is_read_from_the_header_not_the_values():
    """A comma CSV whose values hold semicolons stays comma-separated; tabs are read too."""
    comma = (
        'first and middle names,surname,occupation,address\nJoh.,Schmitz,"Wirt; Bäcker",Markt 1\n'
    )
    tabs = comma.replace(",", "\t").replace('"Wirt; Bäcker"', "Wirt; Bäcker")
    for text in (comma, tabs):
        fields, records = read_records_csv(text, list(FIELDS))
        values = ["Joh.", "Schmitz", "Wirt; Bäcker", "Markt 1"]
        assert fields == list(FIELDS) and records == [dict(zip(FIELDS, values, strict=True))]

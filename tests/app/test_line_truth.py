"""Ground truth cut into the lines and pages of an OCR, for training lines and held-out scores."""

from app.metrics.text import normalize_raw
from app.pipeline.line_truth import align_truth

TRUTH = """Förster, Christian, Fabrikmeister, Großkölnstraße A 391.
Förster, Heinrich, Bäcker, Jakobstraße B 889.
Formanns, Joseph, Schuhmacher, Hirschgraben A 830.

Frank, Johann, Pensionair, Peterstraße A 562.
Frank, Peter, Schneider, Peterstraße A 627.
"""


def test_a_capital_the_ocr_missed_stays_with_its_own_line():
    # The swash capital F at the start of the second and third lines is not read; the
    # ground truth's line breaks say which line it was printed on.
    pages = [
        [
            "Förster, Christian, Fabrikmeister, Großkölnstraße A 391.",
            "örster, Heinrich, Bäcker, Jakobstraße B 889.",
            "ormanns, Joseph, Schuhmacher, Hirschgraben A 830.",
        ],
        ["Frank, Johann, Pensionair, Peterstraße A 562.", "Frank, Peter, Schneider, Peterstraße"],
    ]
    aligned = align_truth(TRUTH, pages)
    first = aligned.lines[0]
    assert first[0].text == "Förster, Christian, Fabrikmeister, Großkölnstraße A 391."
    assert first[1].text == "Förster, Heinrich, Bäcker, Jakobstraße B 889."
    assert (first[1].missing_before, first[1].missing_after) == (1, 0)
    assert first[2].text == "Formanns, Joseph, Schuhmacher, Hirschgraben A 830."
    assert all(line.usable for line in first)
    # The house number the OCR did not read at the end of the last line is that line's (too
    # much for its image to hold, so the line is not trained on).
    last = aligned.lines[1][1]
    assert last.text == "Frank, Peter, Schneider, Peterstraße A 627."
    assert last.missing_after == len(" A 627.") and not last.usable


def test_pages_are_cut_where_their_lines_are_and_add_up_to_the_truth():
    pages = [
        [
            "Förster, Christian, Fabrikmeister, Großkölnstraße A 391.",
            "Förster, Heinrich, Bäcker, Jakobstraße B 889.",
            "Formanns, Joseph, Schuhmacher, Hirschgraben A 830.",
        ],
        [
            "Frank, Johann, Pensionair, Peterstraße A 562.",
            "Frank, Peter, Schneider, Peterstraße A 627.",
        ],
    ]
    aligned = align_truth(TRUTH, pages)
    assert aligned.text_from(1) == normalize_raw(TRUTH.split("\n\n")[1])
    assert aligned.page_text(0) == normalize_raw(TRUTH.split("\n\n")[0])
    assert f"{aligned.page_text(0)} {aligned.text_from(1)}" == normalize_raw(TRUTH)
    assert aligned.text_from(2) == ""


def test_a_line_the_truth_does_not_have_is_not_trained_on():
    pages = [
        [
            "Alphabetisches Verzeichniß der Bewohner. 37",  # a running head left out of the truth
            "Förster, Christian, Fabrikmeister, Großkölnstraße A 391.",
            "Förster, Heinrich, Bäcker, Jakobstraße B 889.",
            "xx ~~ ..",  # a smudge read as text
            "Formanns, Joseph, Schuhmacher, Hirschgraben A 830.",
        ],
        [
            "Frank, Johann, Pensionair, Peterstraße A 562.",
            "Frank, Peter, Schneider, Peterstraße A 627.",
        ],
    ]
    lines = align_truth(TRUTH, pages).lines[0]
    assert [line.usable for line in lines] == [False, True, True, False, True]
    assert [line.text for line in lines if line.usable] == TRUTH.splitlines()[:3]

"""The rules extractor: concrete directory lines to records, and a floor against ground truth."""

import os
from pathlib import Path

import pytest

from app.metrics.records import RecordScores, read_records_csv, score_records
from models.rules import DEFAULT_FIELDS, ExtractedRecord, parse_directory_text

BENCHMARK = Path(
    os.environ.get(
        "HISTOCR_BENCHMARK_DIR", Path(__file__).resolve().parents[3] / "shared" / "benchmark"
    )
)


def _fields(text: str) -> list[tuple[str | None, ...]]:
    return [tuple(r.fields[name] for name in DEFAULT_FIELDS) for r in parse_directory_text(text)]


def _benchmark_scores(text_folder: Path, numbers: range) -> RecordScores:
    if not BENCHMARK.is_dir():
        pytest.fail(f"benchmark data not found at {BENCHMARK}")
    total = RecordScores()
    for number in numbers:
        text = (text_folder / f"type-{number}.txt").read_text(encoding="utf-8")
        fields, reference = read_records_csv(
            BENCHMARK / "ground_truth" / "csv" / f"type-{number}.csv", DEFAULT_FIELDS
        )
        hypothesis = [record.fields for record in parse_directory_text(text, fields)]
        total = total + score_records(reference, hypothesis, fields)
    return total


def test_surname_comma_first_names_line() -> None:
    records = parse_directory_text("Förster, Christian, Fabrikmeister, Großkölnstraße A 391.")
    assert records == [
        ExtractedRecord(
            fields={
                "first and middle names": "Christian",
                "surname": "Förster",
                "occupation": "Fabrikmeister",
                "address": "Großkölnstraße A 391.",
            },
            line_number=1,
            source_line="Förster, Christian, Fabrikmeister, Großkölnstraße A 391.",
            provenance=dict.fromkeys(DEFAULT_FIELDS, "rule:entry"),
        )
    ]


def test_provenance_names_the_heading_or_ditto_a_field_came_from() -> None:
    text = (
        "Nr. 3\n"
        "Fr. Eleon. Sophie Cubaldi, Obersteuerregistrs. Witt.\n"
        "Prediger.\n"
        "Hr. M. Joh. Heinrich Scherzer, neben dem Waysenhause.\n"
    )
    first, second = parse_directory_text(text)
    assert first.provenance["address"] == "rule:house-heading"
    assert first.provenance["surname"] == "rule:entry"
    assert second.provenance["occupation"] == "rule:section-heading"
    surname_first = "Fries Joh. Carl, Handelsmann, Metzgergasse 3.\n— Joh. Jacob, Metzger.\n"
    assert parse_directory_text(surname_first)[1].provenance["surname"] == "rule:ditto"


def test_widow_status_and_occupation_glued_to_street() -> None:
    text = (
        "Friedsam, Louise Wittwe, ohne Gewerb, Peterstraße A 589.\n"
        "Friedrich, Wilhelm, Schuster Peterstraße A 623."
    )
    assert _fields(text) == [
        ("Louise", "Friedsam", "ohne Gewerb", "Peterstraße A 589."),
        ("Wilhelm", "Friedrich", "Schuster", "Peterstraße A 623."),
    ]


def test_wrapped_lines_join_onto_their_entry_and_keep_its_first_line() -> None:
    text = (
        "Alphabetisches Verzeichnis der Bewohner. 37\n"
        "Förster\n"
        "Christian , Fabrikmeister, Großkölnstraße A\n"
        "391.\n"
        "Förster,\n"
        "Johann, Schreiner, Großkölnstraße A 393.\n"
        "Freialdenhoven, Engelbert, Kurzwaarenhandlung, Hüh-\n"
        "nermarkt B 977.\n"
    )
    records = parse_directory_text(text)
    assert [r.line_number for r in records] == [2, 5, 7]
    assert [tuple(r.fields.values()) for r in records] == [
        ("Christian", "Förster", "Fabrikmeister", "Großkölnstraße A 391."),
        ("Johann", "Förster", "Schreiner", "Großkölnstraße A 393."),
        ("Engelbert", "Freialdenhoven", "Kurzwaarenhandlung", "Hüh- nermarkt B 977."),
    ]
    assert records[2].source_line == (
        "Freialdenhoven, Engelbert, Kurzwaarenhandlung, Hüh- nermarkt B 977."
    )


def test_headings_page_numbers_and_catchwords_are_skipped() -> None:
    text = (
        "Frohn, Peter, Bäcker, Hartmannstraße A 1237.\n"
        "4\n"
        "\n"
        "38 Alphabetisches Verzeichniß der Bewohner.\n"
        "Friedberg — Fries 95\n"
        "A.\n"
        "U 2 Hr.\n"
        "*) Da die eine Hälfte dieser Gasse zum ersten Stadtviertel gerechnet wird.\n"
        "(Des Hrn. Sophienpredigers Wohnhaus.)\n"
        "II. Von den öffentlichen Schulen.\n"
        "Frantzen, Arnold, Buchhalter, Templergraben.\n"
    )
    assert [r.fields["surname"] for r in parse_directory_text(text)] == ["Frohn", "Frantzen"]


def test_titles_ditto_marks_and_house_headings() -> None:
    text = (
        "3\n"
        "Hr. Joh. Gottfr. Richter, Schneidermeister, Besitzr dieses Hauses.\n"
        "= Joh. Aug. Schwabe, Schneidermeister.\n"
        "Nr. 3\n"
        "Fr. Eleon. Sophie Cubaldi, Obersteuerregistrs. Witt.\n"
        "= Simon Salomon Isaak, Handelsjude.\n"
        "= Schumann, Weißbäckermeister.\n"
        "Nr 4.\n"
        "ist eine Brandstelle, wo vormals die Schullehrer wohnten.\n"
        "Hr. Advokat, Heinr. Gotthelf Klette.\n"
        "= Joh. Gottfr. Guthmann, Besitzer dieses Hauses.\n"
    )
    assert _fields(text) == [
        ("Joh. Gottfr.", "Richter", "Schneidermeister", None),
        ("Joh. Aug.", "Schwabe", "Schneidermeister", None),
        ("Eleon. Sophie", "Cubaldi", "Obersteuerregistrs. Witt.", "Nr. 3."),
        ("Simon Salomon", "Isaak", "Handelsjude", "Nr. 3."),
        (None, "Schumann", "Weißbäckermeister", "Nr. 3."),
        ("Heinr. Gotthelf", "Klette", "Advokat", "Nr. 4."),
        ("Joh. Gottfr.", "Guthmann", "Besitzer dieses Hauses", "Nr. 4."),
    ]


def test_street_heading_joins_the_house_number() -> None:
    text = (
        "Schreibergasse.\n"
        "Nr. 11.\n"
        "Hr. Karl Gottlieb Kaltofen, Kaufmann, Besitzer dieses Hauses.\n"
        "= Adam Friedr. Neubert, Galanteriearbeiter.\n"
    )
    assert [r.fields["address"] for r in parse_directory_text(text)] == [
        "Schreibergasse, Nr. 11.",
        "Schreibergasse, Nr. 11.",
    ]


def test_ditto_repeats_the_surname_in_surname_first_directories() -> None:
    text = (
        "Fries Joh. Carl, Handelsmann, Metzgergasse 3.\n"
        "— Joh. Jacob, Metzger, Rapunzelgässchen 4.\n"
        "Fries Peter Wilhelm, Metzger, Saalgasse 20.\n"
    )
    assert _fields(text) == [
        ("Joh. Carl", "Fries", "Handelsmann", "Metzgergasse 3."),
        ("Joh. Jacob", "Fries", "Metzger", "Rapunzelgässchen 4."),
        ("Peter Wilhelm", "Fries", "Metzger", "Saalgasse 20."),
    ]


def test_surname_first_without_comma_and_firm_lines() -> None:
    text = (
        "Friedberg, D. A. - Friedbergerstrasse 37.\n"
        "Gebrauchte Möbeln, Betten, C. u. Sp. (Eig. Nachstehender.)\n"
        "Friedberg David Abraham, Hdlsm (s. vorsteh.) Brönnerstr. 1.\n"
        "Friedberg Isaac, Handelsmanns, Wittwe, Töngesgasse 5.\n"
        "Friedel Christian Eduard, Buchdruckergeh., W, kl. Mainzerg. 1.\n"
        "Friederich Carl Philipp, Handelsmann, siehe nachstehend.\n"
        "Friederich Joh. Jacob Friedrich, Säckler, in Nordamerika.\n"
        "Friedberg Simon, Hdlsm (s. vorstehend) Friedberger Anlage 5.\n"
        "v. Fritsch Carl Friedr., Bundestagsgesandter, Weserstrasse 15.\n"
    )
    assert _fields(text) == [
        ("D. A.", "Friedberg", "Gebrauchte Möbeln, Betten, C. u. Sp.", "Friedbergerstrasse 37."),
        ("David Abraham", "Friedberg", "Hdlsm", "Brönnerstr. 1."),
        ("Isaac", "Friedberg", "Handelsmanns", "Töngesgasse 5."),
        ("Christian Eduard", "Friedel", "Buchdruckergeh.", "kl. Mainzerg. 1."),
        ("Carl Philipp", "Friederich", "Handelsmann", None),
        ("Joh. Jacob Friedrich", "Friederich", "Säckler", "in Nordamerika."),
        ("Simon", "Friedberg", "Hdlsm", "Friedberger Anlage 5."),
        ("Carl Friedr.", "v. Fritsch", "Bundestagsgesandter", "Weserstrasse 15."),
    ]


def test_role_headings_supply_a_missing_occupation() -> None:
    text = (
        "Vorsteher.\n"
        "Hr. Caspar Richter, s. Raths-Collegium.\n"
        "Prediger.\n"
        "Hr. M. Joh. Heinrich Scherzer, neben dem Waysenhause.\n"
        "Hr. Joh. Sam. Kühn, Cantor, in der Nicolasstraße, in Dam- hohns Hause.\n"
        "6) Bey der St. Johannis= und Hospital=Kirche vor dem Grimmischen Thore.\n"
        "Hr. Gottfried Heinze, auf dem Grimmischen Steinwege\n"
    )
    assert _fields(text) == [
        ("Caspar", "Richter", "Vorsteher", None),
        ("Joh. Heinrich", "Scherzer", "Prediger", "neben dem Waysenhause."),
        ("Joh. Sam.", "Kühn", "Cantor", "in der Nicolasstraße, in Dam- hohns Hause."),
        ("Gottfried", "Heinze", None, "auf dem Grimmischen Steinwege"),
    ]


def test_merchant_list_with_double_ditto() -> None:
    text = (
        "A.\n"
        "Herren Gebrüder Alleins, auf dem Römerberg, alle Gattung Strümpf Tücher.\n"
        "= = Franz von Alphen, unter der neuen Kräm, in Wollenwaaren.\n"
        "= = Georg Wolfgang Ammelburg, seel. Frau Wittib, auf der Friedberger Gaß.\n"
        "= = Bansa und Reuß, in der Fahrgaß, in Wechselgeschäften.\n"
        "= = Cornelius Baumhauer, in englischen Wollenwaaren en gros am Fahrthor.\n"
    )
    assert _fields(text) == [
        ("Gebrüder", "Alleins", "alle Gattung Strümpf Tücher", "auf dem Römerberg"),
        ("Franz", "von Alphen", "in Wollenwaaren", "unter der neuen Kräm"),
        ("Georg Wolfgang", "Ammelburg", None, "auf der Friedberger Gaß."),
        (None, "Bansa und Reuß", "in Wechselgeschäften", "in der Fahrgaß"),
        ("Cornelius", "Baumhauer", "in englischen Wollenwaaren en gros", "am Fahrthor."),
    ]


def test_other_schema_fields_stay_empty_and_empty_text_gives_nothing() -> None:
    records = parse_directory_text("Forst, Peter, Maurer, Peterstraße A 517.", ("surname", "born"))
    assert [r.fields for r in records] == [{"surname": "Forst", "born": None}]
    assert parse_directory_text("") == []
    assert parse_directory_text("\n\n37\n") == []


def test_type_1_ground_truth_floor() -> None:
    scores = _benchmark_scores(BENCHMARK / "ground_truth" / "txt", range(1, 2))
    assert scores.f1 >= 0.98  # measured 1.000
    assert scores.as_dict()["fields"]["all"]["exact"] >= 0.97  # measured 1.000


def test_all_types_ground_truth_floor() -> None:
    scores = _benchmark_scores(BENCHMARK / "ground_truth" / "txt", range(1, 6))
    fields = scores.as_dict()["fields"]["all"]
    assert scores.f1 >= 0.97  # measured 0.996
    assert fields["exact"] >= 0.88  # measured 0.907
    assert fields["fuzzy"] >= 0.92  # measured 0.946


def test_wrapped_ocr_text_floor() -> None:
    scores = _benchmark_scores(BENCHMARK / "reference_outputs" / "gemini-2.0-flash", range(1, 6))
    assert scores.f1 >= 0.93  # measured 0.962
    assert scores.as_dict()["fields"]["all"]["fuzzy"] >= 0.88  # measured 0.912

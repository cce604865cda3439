"""From frak2021's diplomatic transcription to the regularised one the ground truth uses.

frak2021 (trained on GT4HistOCR) writes what is printed: long s, superscript-e umlauts, the
double oblique hyphen. The benchmark's transcribers (and most users searching a directory)
write the modern letter. Keep the diplomatic text as well; this mapping only regularises
letter forms, it never changes spelling (`Verzeichniß` stays).
"""

from __future__ import annotations

import unicodedata

#: Diplomatic form -> regularised form, applied in this order (longest first where it matters).
REGULARISATION: tuple[tuple[str, str, str], ...] = (
    # (diplomatic, regularised, why)
    ("a\u0364", "ä", "a with superscript e is the older form of ä"),
    ("o\u0364", "ö", "o with superscript e is the older form of ö"),
    ("u\u0364", "ü", "u with superscript e is the older form of ü"),
    ("A\u0364", "Ä", "capital with superscript e"),
    ("O\u0364", "Ö", "capital with superscript e"),
    ("U\u0364", "Ü", "capital with superscript e"),
    ("\u017f", "s", "long s: the ground truth writes round s"),
    ("\ua75b", "r", "r rotunda"),
    ("\u2e17", "=", "double oblique hyphen: printed as `=` in the transcription"),
    ("\u00ac", "-", "not sign used by some models for a hyphen at line end"),
    ("\u2010", "-", "Unicode hyphen"),
    ("\u201e", '"', "low double quotation mark"),
    ("\u201c", '"', "high double quotation mark"),
    ("\u201a", "'", "low single quotation mark"),
    ("\u2018", "'", "high single quotation mark"),
    ("\u2019", "'", "right single quotation mark"),
    ("\ufb00", "ff", "ligature"),
    ("\ufb01", "fi", "ligature"),
    ("\ufb02", "fl", "ligature"),
    ("\ufb05", "st", "long s t ligature"),
    ("\ufb06", "st", "st ligature"),
)


def regularise(text: str) -> str:
    """Apply `REGULARISATION` to a diplomatic transcription (NFC in, NFC out)."""
    text = unicodedata.normalize("NFC", text)
    for diplomatic, regular, _ in REGULARISATION:
        text = text.replace(diplomatic, regular)
    return unicodedata.normalize("NFC", text)

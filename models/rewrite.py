"""Is an answer a plausible rewrite of the text it was given (a post-correction of OCR text)?

A correction keeps most of what it corrects: it fixes characters, drops the odd invented line
and adds the odd missed one. An answer with less than half of its input's letters and digits
lost text (an empty 200 answer, a sentence of commentary, a page cut to its first lines), and
storing it would silently replace the OCR text by less. Letters and digits are counted, not
characters: spaces, line breaks and the punctuation specks that OCR reads into a dirty scan
come and go in a good correction. There is no upper bound: the correction prompt asks for the
lines the OCR missed, so a correction of a poor OCR text may rightly be several times longer
(the pages where correction helps most), and a model that loops runs into its token limit and
is caught as cut off. Inputs with few letters and digits (a page number, the noise OCR reads on
a blank page) are not judged: an empty answer may be right there.

The `openai` engine asks again when an answer fails this check (models.openai_engine); the
workers apply it to every engine's correction before storing it (workers.tasks.stages).
"""

#: A rewrite must keep at least this share of its input's letters and digits.
MIN_KEPT_SHARE = 0.5
#: Inputs with fewer letters and digits than this are not judged.
MIN_JUDGED_CHARS = 20


def letters_and_digits(text: str) -> int:
    """How many letters and digits `text` has (any script: ſ, ä and ꝛ count)."""
    return sum(1 for char in text if char.isalnum())


def rewrite_problem(source: str, answer: str) -> str:
    """Why `answer` cannot be a rewrite of `source`; empty when it can."""
    given = letters_and_digits(source)
    if given < MIN_JUDGED_CHARS:
        return ""
    kept = letters_and_digits(answer)
    if kept == 0:
        return f"the answer is empty, but its input text has {given} letters and digits"
    if kept < MIN_KEPT_SHARE * given:
        return (
            f"the answer has {kept} letters and digits, under {MIN_KEPT_SHARE:.0%} of the "
            f"{given} of its input text (a correction keeps most of what it corrects)"
        )
    return ""

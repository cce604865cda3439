"""Small test data makers shared by several test modules."""

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

# Directory entries as printed: surname, first names, occupation, address. ASCII spellings,
# because the font bundled with Pillow has no umlaut glyphs and the test must not depend on
# system fonts.
PRINTED_LINES = [
    "Foerster, Christian, Fabrikmeister, Grosskoelnstrasse A 391.",
    "Foerster, Johann, Schreiner, Grosskoelnstrasse A 393.",
    "Mueller, Peter Joseph, Baecker, Hochstrasse 12.",
    "Schmitz, Anna Maria, Kauffrau, Marktstrasse 7.",
]


def render_page(path: Path, lines: list[str]) -> Path:
    """A clean printed page: big black text on white, one entry per line."""
    font = ImageFont.load_default(size=40)
    image = Image.new("L", (1400, 80 + 70 * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    for index, line in enumerate(lines):
        draw.text((40, 40 + 70 * index), line, fill="black", font=font)
    image.save(path, dpi=(300, 300))
    return path

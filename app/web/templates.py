"""The UI's Jinja templates, shared by the pages and the HTML error answers."""

from pathlib import Path

from fastapi.templating import Jinja2Templates

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
TEMPLATES = Jinja2Templates(directory=FRONTEND / "templates")

"""The browser UI: server-rendered pages (`pages`) on the templates in frontend/templates."""

"""`histocr process`'s engine options come from the engines' specs and are never ignored."""

from click.testing import CliRunner

from app.cli import cli
from models.registry import engine_specs


def run(*args: str):
    return CliRunner().invoke(cli, ["process", *args])


def test_every_command_line_parameter_of_every_engine_is_an_option():
    help_text = run("--help").output
    flags = {p.cli for s in engine_specs().values() for p in s.parameters if p.cli}
    assert {"--model", "--psm", "--languages", "--image-max-side"} <= flags
    for flag in flags:
        assert flag in help_text, flag


def test_an_option_no_engine_of_the_run_takes_is_a_usage_error(tmp_path):
    text = tmp_path / "page.txt"
    text.write_text("Förster, Christian, Fabrikmeister, Großkölnstraße A 391.\n", encoding="utf-8")
    result = run(str(text), "--psm", "6", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert "--psm" in result.output and "import" in result.output
    assert not (tmp_path / "out").exists()


def test_a_value_outside_the_parameter_s_limits_is_refused_with_its_name(tmp_path):
    text = tmp_path / "page.txt"
    text.write_text("Förster, Christian, Fabrikmeister, Großkölnstraße A 391.\n", encoding="utf-8")
    result = run(str(text), "--ocr", "tesseract", "--psm", "99", "--out", str(tmp_path / "out"))
    assert result.exit_code == 1, result.output
    assert "'psm' must be at most 13" in result.output


def test_base_url_is_the_operator_s_default_endpoint_and_needs_the_openai_engine(tmp_path):
    text = tmp_path / "page.txt"
    text.write_text("Förster, Christian, Fabrikmeister, Großkölnstraße A 391.\n", encoding="utf-8")
    out = str(tmp_path / "out")
    unused = run(str(text), "--base-url", "http://127.0.0.1:9/v1", "--out", out)
    assert unused.exit_code == 2 and "--base-url: no engine of this run takes it" in unused.output
    scheme = run(str(text), "--correct", "openai", "--base-url", "file:///etc/passwd", "--out", out)
    assert scheme.exit_code == 2 and "http:// or https://" in scheme.output
    assert not (tmp_path / "out").exists()

"""A browser user on a server that requires accounts: logs in, works as before, logs out."""

from collections.abc import Iterator

import pytest

from app.config import Settings
from app.db.session import session_scope
from app.services import accounts
from tests.helpers import live_app, render_page


@pytest.fixture
def secured_app(sqlite_settings: Settings) -> Iterator[tuple[str, str]]:
    """The real app on a real port with accounts required, and one user's password."""
    settings = sqlite_settings.model_copy(update={"auth_required": True})
    with session_scope(settings.resolved_database_url) as session:
        _, password = accounts.create_user(session, "ada")
    with live_app(settings) as base:
        yield base, password


def test_a_user_logs_in_works_and_logs_out(secured_app, browser, tmp_path):
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, password = secured_app
    wait = WebDriverWait(browser, 20)
    browser.get(f"{base}/")
    wait.until(lambda d: "/login" in d.current_url)
    browser.find_element(By.ID, "login-name").send_keys("ada")
    browser.find_element(By.ID, "login-password").send_keys("not the password")
    browser.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
    wait.until(lambda d: d.find_elements(By.ID, "login-error"))
    assert "Wrong user name or password" in browser.find_element(By.ID, "login-error").text

    browser.find_element(By.ID, "login-password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
    wait.until(lambda d: d.find_elements(By.ID, "current-user"))
    assert browser.find_element(By.ID, "current-user").text == "ada"
    # The page's own script sends the CSRF token: creating a project works as before.
    browser.find_element(By.ID, "project-name").send_keys("Adressbuch Köln 1822")
    browser.find_element(By.CSS_SELECTOR, "#new-project button[type=submit]").click()
    wait.until(lambda d: "/projects/" in d.current_url)
    assert "Adressbuch Köln 1822" in browser.page_source
    # Nothing of it is visible without the session.
    assert httpx.get(f"{base}/api/v1/projects").status_code == 401
    # An upload (XMLHttpRequest with progress) carries the token too: the document is listed.
    scan = render_page(tmp_path / "Köln-1822.png", ["Förster, Christian, Fabrikmeister"])
    browser.find_element(By.ID, "start-default-run").click()  # upload only
    browser.find_element(By.ID, "file-input").send_keys(str(scan))
    wait.until(lambda d: "Köln-1822.png" in d.find_element(By.ID, "documents").text)

    # The account page makes an API token, shown once; a script then sees what the user sees.
    browser.get(f"{base}/account")
    browser.find_element(By.ID, "token-name").send_keys("harvest")
    browser.find_element(By.ID, "token-read-only").click()
    browser.find_element(By.CSS_SELECTOR, "#new-token button[type=submit]").click()
    wait.until(lambda d: d.find_element(By.ID, "new-token-value").text.startswith("hocr_"))
    token = browser.find_element(By.ID, "new-token-value").text
    wait.until(lambda d: "harvest" in d.find_element(By.ID, "token-rows").text)
    headers = {"Authorization": f"Bearer {token}"}
    listed = httpx.get(f"{base}/api/v1/projects", headers=headers).json()
    assert [p["name"] for p in listed] == ["Adressbuch Köln 1822"]
    assert (
        httpx.post(f"{base}/api/v1/projects", json={"name": "x"}, headers=headers).status_code
        == 403
    )

    browser.find_element(By.CSS_SELECTOR, ".site-user button[type=submit]").click()
    wait.until(lambda d: "/login" in d.current_url)
    browser.get(f"{base}/")
    wait.until(lambda d: "/login" in d.current_url)

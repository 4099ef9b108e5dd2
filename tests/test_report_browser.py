"""The HTML report in a real browser: headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from fraudvae.jobs.workflows import evaluate_file

pytestmark = pytest.mark.slow  # real processes, servers or long runs: make test, not make check

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def report_dir(model_dir: Path, holdout, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The evaluation report of the session's fitted model on its held-out rows (what ``fraudvae
    evaluate`` writes). The demo writes the same report: ``tests/test_readme.py`` checks that
    ``make demo`` writes its data, model and report."""
    X, y = holdout
    out = tmp_path_factory.mktemp("report")
    X.assign(is_fraud=y).to_csv(out / "labelled.csv", index=False)
    evaluate_file(model_dir, out / "labelled.csv", "is_fraud", out / "report")
    return out


def test_report_renders_with_images_and_no_console_errors(report_dir: Path) -> None:
    assert Path(CHROMIUM).exists(), "Chromium is installed by scripts/install-system-deps.sh (make test)"
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        response = page.goto((report_dir / "report" / "report.html").as_uri(), wait_until="load")
        assert response is not None and response.ok
        images = page.evaluate("[...document.images].map(i => ({ok: i.complete && i.naturalWidth > 100, alt: i.alt}))")
        title = page.title()
        headings = page.locator("h2").all_inner_texts()
        browser.close()
    assert title == "fraudvae evaluation report"
    assert len(images) == 5 and all(i["ok"] for i in images), images
    assert errors == []
    assert all(u.startswith(("file:", "data:")) for u in requests), "the report must be self-contained"
    assert any("calibrated threshold" in h for h in headings)


def test_regression_docs_loaded_swagger_ui_from_a_cdn(model_dir: Path) -> None:
    """/docs was blank without internet: Swagger UI came from a CDN. Served from a Python
    package now; the browser may reach nothing but the server, and the page renders."""
    import httpx

    from tests.test_service_process import start_server

    proc, url = start_server(model_dir)
    outside: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
            )
            page = browser.new_page()

            def only_local(route):  # type: ignore[no-untyped-def]
                if route.request.url.startswith(url):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", only_local)
            rendered = {}
            for path, selector in (("/docs", ".swagger-ui .opblock-summary-path"),):
                page.goto(f"{url}{path}", wait_until="load")
                page.wait_for_selector(selector, timeout=30_000)
                rendered[path] = page.locator(selector).all_inner_texts()
            browser.close()
        redoc = httpx.get(f"{url}/redoc").status_code
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert outside == []
    assert any("/score" in t for t in rendered["/docs"]), rendered
    assert redoc == 404  # ReDoc fetches its logo from a CDN: not served

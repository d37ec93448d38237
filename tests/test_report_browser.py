"""The report in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``).

Skipped, with the reason, when either or selenium is missing. Screenshots land in
``test-artifacts/`` for a person to look at.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest

from ductaflow.reporting.html_report import generate_status_report
from ductaflow.run_folder.files import REPORT_HTML
from tests.test_report import XSS, make_runs

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).parents[1] / "test-artifacts"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1400,1000")


def _find(*names: str) -> str | None:
    return next((path for name in names if (path := shutil.which(name))), None)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    chromium = _find("chromium", "chromium-browser")
    driver_path = _find("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("chromium and chromium-driver are not installed")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="ductaflow-chromium-")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")  # never let selenium fetch a driver
        driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs, results = make_runs(tmp_path_factory.mktemp("project"))
    path = runs / REPORT_HTML
    path.write_text(generate_status_report(results, runs), encoding="utf-8")
    return path


def open_page(driver: object, path: Path) -> None:
    driver.get(path.as_uri())
    driver.execute_script("sessionStorage.clear()")
    driver.get(path.as_uri())


def _remembered(driver: object, element_id: str) -> None:
    """Wait for the page's toggle handler (a queued event, not part of the click) to
    have stored the element as open: a refresh the same millisecond would race it."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10).until(lambda d: d.execute_script(
        "const key = 'ductaflow:' + location.pathname;"
        "return JSON.parse(sessionStorage.getItem(key) || '{}')[arguments[0]] === true;",
        element_id))


def errors(driver: object) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]


def screenshot(driver: object, name: str) -> Path:
    """The whole page, not just the window."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / name
    target.write_bytes(base64.b64decode(shot["data"]))
    return target


def test_page_loads_without_console_errors_and_counts_match(browser: object,
                                                            report: Path) -> None:
    open_page(browser, report)
    assert errors(browser) == []
    cards = browser.execute_script("""
        const found = {};
        document.querySelectorAll('[data-count]').forEach(card =>
            found[card.dataset.count] = +card.querySelector('b').textContent);
        return found;""")
    rows = browser.execute_script("""
        const found = {};
        document.querySelectorAll('details.inst').forEach(row =>
            found[row.dataset.status] = (found[row.dataset.status] || 0) + 1);
        return found;""")
    assert cards["total"] == sum(rows.values()) == 7
    for light in ("success", "warning", "error", "none"):
        assert cards[light] == rows.get(light, 0), light
    screenshot(browser, "report.png")


def test_clicking_a_build_shows_its_flows_and_is_remembered(browser: object,
                                                            report: Path) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, report)
    build = browser.find_element(By.CSS_SELECTOR, 'details[data-build]')
    green = browser.find_element(By.CSS_SELECTOR, 'details[data-key="prep/north"]')
    flows = build.find_elements(By.CSS_SELECTOR, "tr.flow")
    assert not any(f.is_displayed() for f in flows)  # every panel starts closed
    build.find_element(By.TAG_NAME, "summary").click()
    assert all(f.is_displayed() for f in flows)
    build.find_element(By.TAG_NAME, "summary").click()
    assert not any(f.is_displayed() for f in flows)
    build.find_element(By.TAG_NAME, "summary").click()
    assert "runs/chart" in flows[1].text and "orange" in flows[1].text
    provenance = green.find_element(By.CSS_SELECTOR, "dl.prov")
    assert not provenance.is_displayed()
    green.find_element(By.TAG_NAME, "summary").click()
    assert provenance.is_displayed() and "packages" in provenance.text
    _remembered(browser, green.get_attribute("id"))
    browser.refresh()  # as the live page does: what the user opened stays open
    green = browser.find_element(By.CSS_SELECTOR, 'details[data-key="prep/north"]')
    assert green.get_attribute("open") is not None
    assert errors(browser) == []


def test_table_content_shows_as_text_and_runs_nothing(browser: object, report: Path) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    open_page(browser, report)
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert  # noqa: B018
    assert browser.execute_script("return document.querySelectorAll('img').length") == 0
    assert browser.execute_script("return document.scripts.length") == 1
    row = browser.find_element(By.CSS_SELECTOR, 'details[data-key="prep/new york"]')
    assert XSS in row.text
    west = browser.find_element(By.CSS_SELECTOR, 'details[data-key="model/west"]')
    west.find_element(By.TAG_NAME, "summary").click()  # its output: closed at first
    assert "<script>alert(2)</script>" in west.text
    assert errors(browser) == []


def test_links_resolve_to_existing_files(browser: object, report: Path) -> None:
    open_page(browser, report)
    hrefs = browser.execute_script(
        "return [...document.querySelectorAll('a[href]')]"
        ".map(a => new URL(a.getAttribute('href'), document.baseURI).href)")
    files = [h for h in hrefs if "#" not in h]
    anchors = [h.split("#", 1)[1] for h in hrefs if "#" in h]
    assert len(files) > 20 and anchors
    for href in files:
        url = urlparse(href)
        assert url.scheme == "file"
        assert Path(url2pathname(url.path)).is_file(), href
    for anchor in anchors:
        assert browser.execute_script("return !!document.getElementById(arguments[0])", anchor)
    output = next(h for h in files if h.endswith("_execution_output.txt"))
    browser.get(output)
    assert "Completed" in browser.page_source or "Failed" in browser.page_source


def test_running_page_refreshes_itself(browser: object, report: Path,
                                       tmp_path: Path) -> None:
    runs, results = make_runs(tmp_path)
    live = runs / REPORT_HTML
    live.write_text(generate_status_report(results[:3], runs, running=True, elapsed_s=3.0,
                                           refresh_s=1),
                    encoding="utf-8")
    open_page(browser, live)
    browser.execute_script("window.__marker = 1")
    live.write_text(generate_status_report(results, runs, running=False), encoding="utf-8")
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 15).until(
        lambda d: d.execute_script("return window.__marker === undefined"))
    assert "Finished" in browser.find_element("css selector", "header").text
    assert not browser.find_elements("css selector", 'meta[http-equiv="refresh"]')
    screenshot(browser, "report-finished-after-refresh.png")
    assert os.path.getsize(ARTIFACTS / "report-finished-after-refresh.png") > 0


def test_results_chart_and_sortable_table(browser: object, tmp_path: Path) -> None:
    """The chart draws a bar per instance, coloured by scenario; a click on a numeric
    header sorts by number, a second click the other way; hostile text stays text."""
    from tests.test_results import charted_project

    (tmp_path / "flows").mkdir()
    page = charted_project(tmp_path)
    open_page(browser, page)
    assert errors(browser) == []
    bars = browser.execute_script("""
        const chart = document.querySelector('.chart svg');
        return Array.from(chart.querySelectorAll('rect')).map(r => [
            r.getAttribute('class'), r.getBoundingClientRect().width]);""")
    assert len(bars) == 6 and len({c for c, _ in bars}) == 3
    assert all(width > 0 for _, width in bars)
    column = browser.execute_script("""
        const heads = Array.from(document.querySelectorAll('table.sortable th'));
        return heads.findIndex(h => h.textContent === 'npv');""")

    def npv_column() -> list[str]:
        return browser.execute_script(
            "return Array.from(document.querySelectorAll('table.sortable tbody tr'))"
            f".map(r => r.cells[{column}].textContent);")

    header = browser.find_elements("css selector", "table.sortable th")[column]
    numbers = [-1.5, 0.0, 3.0, 7.25, 12.0, 2500000.0]
    header.click()
    assert [float(x) for x in npv_column()] == numbers  # by number, not as text
    header.click()
    assert [float(x) for x in npv_column()] == numbers[::-1]
    assert browser.execute_script("return document.images.length") == 0
    screenshot(browser, "report-results.png")


def test_search_and_status_filter_narrow_the_list(browser: object, report: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    open_page(browser, report)

    def shown() -> list[str]:
        return sorted(row.get_attribute("data-key") for row in
                      browser.find_elements(By.CSS_SELECTOR, "details.inst") if row.is_displayed())

    everything = shown()
    assert len(everything) == 7
    search = browser.find_element(By.ID, "search")
    search.send_keys("west")
    assert shown() == ["model/west"]
    assert "1 of 7 instances shown" in browser.find_element(By.ID, "shown").text
    search.clear()
    search.send_keys(" ")  # an input event with nothing to look for
    status = Select(browser.find_element(By.ID, "status-filter"))
    red = sorted(row.get_attribute("data-key") for row in
                 browser.find_elements(By.CSS_SELECTOR, 'details.inst[data-status="error"]'))
    status.select_by_value("error")
    assert red and shown() == red
    status.select_by_value("attention")
    lights = {browser.find_element(By.CSS_SELECTOR, f'details[data-key="{k}"]')
              .get_attribute("data-status") for k in shown()}
    assert lights <= {"error", "warning", "none"} and len(shown()) >= 3
    browser.refresh()  # the live page refreshes: the filter stays as the user set it
    assert Select(browser.find_element(By.ID, "status-filter")).first_selected_option\
        .get_attribute("value") == "attention"
    Select(browser.find_element(By.ID, "status-filter")).select_by_value("all")
    assert shown() == everything
    link = browser.find_element(By.CSS_SELECTOR, "ul.attention a.key")
    target = link.get_attribute("href").rsplit("#", 1)[1]
    assert browser.find_elements(By.ID, target)  # each leads to its instance's panel
    assert errors(browser) == []

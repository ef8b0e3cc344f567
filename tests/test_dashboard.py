"""The live dashboard (``GET /dashboard``) in a real headless Chromium (Debian's ``chromium``
driven by selenium through Debian's ``chromium-driver``; ``.ci/run`` installs both) against
a real server on a real redis-server, with traffic while the page polls. Saves a
screenshot in the test's temporary directory; ``FRESHREC_SCREENSHOT=docs/dashboard.png``
writes it there instead (how the README's picture is refreshed), so a test run leaves the
checkout as it found it.

No browser is downloaded: without ``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` the
test fails (it does not skip)."""

import os
import random
import shutil
import time
from pathlib import Path

import httpx
import pytest

from simulators.server_process import ServerProcess

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,1000", "--hide-scrollbars"]


def browser_binaries() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("Debian's chromium and chromium-driver are required (.ci/run installs them: "
                    "apt-get install -y chromium chromium-driver)")
    return chromium, driver


@pytest.fixture
def browser(tmp_path, monkeypatch):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = browser_binaries()
    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium-manager must not look for a browser or driver online
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path,
                                                              log_output=str(tmp_path / "chromedriver.log")))
    try:
        yield driver
    finally:
        driver.quit()


class Traffic:
    """Seeded app traffic: a catalogue, slates and clicks on them, ratings."""

    def __init__(self, http: httpx.Client, seed: int = 0) -> None:
        self.http = http
        self.rng = random.Random(seed)
        for n in range(40):
            http.put(f"/items/film-{n}", json={"title": f"Film {n}", "tags": [["drama", "comedy", "sf"][n % 3]]})

    def burst(self, users: int = 30) -> None:
        events = []
        for _ in range(users):
            user = f"user-{self.rng.randrange(200)}"
            slate = self.http.post("/recommend", json={"user_id": user, "k": 10}).json()
            item = self.rng.choice(slate["items"])["item_id"] if slate["items"] else f"film-{self.rng.randrange(40)}"
            events.append({"user_id": user, "item_id": item, "event": "click",
                           "recommendation_id": slate["recommendation_id"]})
            events.append({"user_id": user, "item_id": f"film-{self.rng.randrange(40)}", "event": "rating",
                           "value": self.rng.randint(0, 10)})
        assert self.http.post("/feedback/batch", json={"events": events}).status_code == 202


def number(driver, element_id: str) -> float | None:
    text = driver.find_element("id", element_id).text.replace(",", "").strip()
    try:
        return float(text)
    except ValueError:
        return None


def test_the_dashboard_shows_the_numbers_moving_under_traffic(redis_server, tmp_path, browser):
    with ServerProcess(redis_url=redis_server.url, log_path=tmp_path / "server.log") as server, \
            httpx.Client(base_url=server.url, timeout=10) as http:
        page = http.get("/dashboard")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "connect-src 'self'" in page.headers["content-security-policy"]
        assert "http://" not in page.text and "https://" not in page.text  # no CDN, nothing external

        traffic = Traffic(http)
        browser.get(server.url + "/dashboard")
        polls = lambda: int(browser.find_element("tag name", "body").get_attribute("data-polls"))  # noqa: E731
        deadline = time.monotonic() + 30
        while (polls() < 1 or number(browser, "events-learned") is None) and time.monotonic() < deadline:
            time.sleep(0.05)  # bounded poll: the page's first poll
        first = number(browser, "events-learned")
        assert first is not None, "the page never showed events learned"

        seen = {"learned": first, "accepted_rate": 0.0, "latency": None, "positives_rate": 0.0}
        start_polls = polls()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # traffic while the page polls, until every number moved
            traffic.burst()
            seen["learned"] = max(seen["learned"], number(browser, "events-learned") or 0)
            seen["accepted_rate"] = max(seen["accepted_rate"], number(browser, "accepted-rate") or 0)
            seen["positives_rate"] = max(seen["positives_rate"], number(browser, "positives-rate") or 0)
            seen["latency"] = number(browser, "recommend-p99") or seen["latency"]
            if (seen["learned"] > first and seen["accepted_rate"] > 0 and seen["positives_rate"] > 0
                    and seen["latency"] and polls() >= start_polls + 8):
                break
        assert seen["learned"] > first, f"events learned stayed at {first}"
        assert seen["accepted_rate"] > 0 and seen["positives_rate"] > 0, seen
        assert seen["latency"] and 0 < seen["latency"] < 10_000, seen
        assert number(browser, "freshness-p99") is not None
        assert number(browser, "stream-lag") is not None and number(browser, "guard-windows") is not None
        version = http.post("/snapshots").json()["version"]  # admin, on loopback: a checkpoint now
        deadline = time.monotonic() + 30
        while f"v{version}" not in browser.find_element("id", "snapshots").text and time.monotonic() < deadline:
            traffic.burst(5)  # the page reads /snapshots every 5th poll
        assert f"v{version} (serving)" in browser.find_element("id", "snapshots").text

        screenshot = Path(os.environ.get("FRESHREC_SCREENSHOT") or tmp_path / "dashboard.png")
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(screenshot))
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == [], errors
    assert 10_000 < screenshot.stat().st_size < 300_000

"""Both UIs rendered in a real browser (Debian's Chromium, headless, offline, through Selenium with the
system's chromedriver): a finished run's page in `harness ui` with its sample grid loaded, and a
study's page in `harness dashboard`. Screenshots go to $HARNESS_TEST_ARTIFACTS or a temporary folder,
named in the test's output."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import need
from tracking_server import free_port
from harness import tracking
from harness.__main__ import main

SMOKE = ["--smoke", "--set", "eval.n_images=100"]
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def browser(tmp_path):
    need(Path(CHROMIUM).exists() and Path(DRIVER).exists(), "Debian's chromium and chromium-driver")
    need(importlib.util.find_spec("selenium") is not None, "selenium (pip install -e \".[test]\")")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1400,1000"):
        options.add_argument(flag)  # the offline set: no calls home that this closed network would refuse
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


@pytest.fixture
def shots(tmp_path, record_property) -> Path:
    """The screenshots' folder, named at the end of pytest's output (conftest.pytest_terminal_summary)."""
    folder = Path(os.environ.get("HARNESS_TEST_ARTIFACTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    record_property("screenshots", str(folder))
    return folder


def _serve(store, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=store, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _open(driver, url: str, text: str, deadline: float = 180) -> None:
    """Load url (again, while the server starts) until the page shows text."""
    end = time.time() + deadline
    while True:
        try:
            driver.get(url)
            for _ in range(30):
                if text in driver.find_element("tag name", "body").text:
                    return
                time.sleep(1)
        except Exception:  # connection refused while the server starts
            time.sleep(1)
        if time.time() > end:
            raise AssertionError(f"{url} never showed {text!r}; it showed: {driver.find_element('tag name', 'body').text[:500]}")


@pytest.mark.slow
def test_mlflow_ui_shows_a_finished_run_and_its_sample_grid(store, browser, shots):
    assert main(["run", "smoothing", *SMOKE]) == 0
    c = tracking.client()
    experiment = c.get_experiment_by_name("smoothing")
    (run,) = c.search_runs([experiment.experiment_id])
    port = free_port()
    proc = _serve(store, "ui", "--port", str(port))
    try:
        base = f"http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}"
        view = "?workflowType=machine_learning"  # the model-training view, as `harness ui` prints its address
        _open(browser, base + view, "smoothing-s0")
        browser.save_screenshot(str(shots / "mlflow-run.png"))
        assert "Model registry" in browser.find_element("tag name", "body").text  # the model-training sidebar
        _open(browser, f"{base}/artifacts/samples/step_0000006.png{view}", "step_0000006.png")
        end, width = time.time() + 60, 0
        while time.time() < end and not width:
            width = browser.execute_script(  # the grid's preview: the image in the artifact pane, once loaded
                "const i = [...document.images].filter(i => i.complete && i.naturalWidth > 200);"
                "return i.length ? i[0].naturalWidth : 0;")
            time.sleep(1)
        browser.save_screenshot(str(shots / "mlflow-samples.png"))
        assert width > 0, "the sample grid did not load"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


@pytest.mark.slow
def test_optuna_dashboard_shows_the_study_and_its_trials(store, browser, shots):
    need(importlib.util.find_spec("optuna_dashboard") is not None, "optuna-dashboard (pip install -e \".[test]\")")
    assert main(["search", "tanh", "--trials", "2", *SMOKE]) == 0
    port = free_port()
    proc = _serve(store, "dashboard", "--port", str(port))
    try:
        _open(browser, f"http://127.0.0.1:{port}/dashboard", "tanh/default")
        browser.save_screenshot(str(shots / "dashboard-studies.png"))
        browser.find_element("partial link text", "tanh/default").click()
        end = time.time() + 60
        while time.time() < end and "trial #1" not in browser.find_element("tag name", "body").text:
            time.sleep(1)
        body = browser.find_element("tag name", "body").text
        browser.save_screenshot(str(shots / "dashboard-study.png"))
        # The study's page, and its trials in the intermediate-values plot: two, numbered 0 and 1.
        assert "tanh/default" in body and "trial #0" in body and "trial #1" in body and "trial #2" not in body
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)

"""The screenshot of `ragqa serve`'s page in docs/serving.md and the README: docs/images/serve.png.

Indexes the user guide (docs/) into a temporary folder, starts `ragqa serve` over it, asks a
question in Debian's headless Chromium (packages chromium and chromium-driver, driven through
Selenium and the system chromedriver; nothing is downloaded) and saves the page as a PNG:

    .venv/bin/python tests/serve_screenshot.py [--out docs/images/serve.png]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "What is the default passage size in words?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "serve.png")
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument("--size", default="1100,800", help="page width,height in pixels")
    args = parser.parse_args()
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        sys.exit("error: no chromium or chromedriver on PATH: apt-get install chromium chromium-driver")

    import httpx
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from rag_qa import Index

    os.environ.update(HF_HUB_OFFLINE="1", SE_OFFLINE="true")
    work = Path(tempfile.mkdtemp(prefix="ragqa-screenshot-"))
    server = driver = None
    try:
        Index.build([ROOT / "docs"], work / "index", show_progress=False)
        port = _free_port()
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("ragqa")), "serve", "--index-dir", str(work / "index")]
            + ["--port", str(port), "--feedback-dir", str(work / "feedback"), "-q"],
            cwd=ROOT,  # the page shows docs/... paths, relative to the project
            env={k: v for k, v in os.environ.items() if k != "RAGQA_API_KEY"},
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                sys.exit(f"error: ragqa serve stopped with status {server.returncode}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                sys.exit("error: ragqa serve was not ready after 120 s")
            time.sleep(0.2)

        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={work / 'chromium'}")
        options.add_argument(f"--window-size={args.size}")
        options.add_argument("--hide-scrollbars")
        driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
        driver.set_page_load_timeout(30)
        width, height = (int(n) for n in args.size.split(","))
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)  # the page's own size, exactly
        driver.get(base + "/")
        driver.find_element(By.ID, "question").send_keys(args.question)
        driver.find_element(By.ID, "ask-button").click()
        WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#answers .answer mark")))
        png = driver.get_screenshot_as_png()
    finally:
        if driver is not None:
            driver.quit()
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
        shutil.rmtree(work, ignore_errors=True)

    image = Image.open(io.BytesIO(png)).convert("RGB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out, optimize=True)
    print(f"{args.out}: {image.width}x{image.height}, {args.out.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

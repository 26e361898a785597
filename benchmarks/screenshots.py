"""Screenshots of a finished run's HTML report and of ``ensprune dashboard`` on it, for a person to look at.

Uses Debian's ``chromium`` (``apt-get install chromium``) driven by Playwright (``pip install
playwright``, in the ``test`` extra); Playwright's own browser download is not needed.

    python benchmarks/screenshots.py runs/quickstart --out screenshots/

writes ``report.png`` (the whole page), ``dashboard.png`` (the study list) and
``dashboard-study.png`` (the first study's page). The report is built first when the run has none.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"ensprune dashboard exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=5).close()
            return
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"the dashboard did not answer on {url} in {timeout_s:.0f} s"
                ) from None
            time.sleep(0.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a finished run directory")
    parser.add_argument("--out", type=Path, default=Path("screenshots"), help="output folder")
    parser.add_argument(
        "--chromium",
        default=os.environ.get("ENSPRUNE_CHROMIUM", "/usr/bin/chromium"),
        help="the chromium binary (default: $ENSPRUNE_CHROMIUM or /usr/bin/chromium)",
    )
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from ensprune.report import build_report

    args.out.mkdir(parents=True, exist_ok=True)
    report = args.run_dir / "report" / "report.html"
    if not report.is_file():
        report = build_report(args.run_dir)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "ensprune", "dashboard", str(args.run_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # the server's access log
    )
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": args.width, "height": 900})
            page.goto(report.resolve().as_uri(), wait_until="networkidle")
            page.screenshot(path=str(args.out / "report.png"), full_page=True)
            print(f"wrote {args.out / 'report.png'}")

            _wait_for(base + "/api/studies", server, 60)
            page.goto(base + "/", wait_until="networkidle")
            page.get_by_text("Direction").first.wait_for(timeout=30_000)
            page.screenshot(path=str(args.out / "dashboard.png"))
            print(f"wrote {args.out / 'dashboard.png'}")
            cards = page.locator("a[href*='/dashboard/studies/']")
            if cards.count():
                cards.first.click()
                page.wait_for_load_state("networkidle")
                time.sleep(2)  # the study page draws its charts after the data arrives
                page.screenshot(path=str(args.out / "dashboard-study.png"), full_page=True)
                print(f"wrote {args.out / 'dashboard-study.png'}")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()

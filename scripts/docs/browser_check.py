"""Open the built docs site in headless Chromium and check that it works as a reader sees it.

    python scripts/docs/browser_check.py [--site site] [--screenshots site-screenshots]

Serves ``--site`` (what ``mkdocs build`` wrote) on 127.0.0.1 and drives Debian's ``chromium`` with
its ``chromium-driver`` through selenium (nothing is downloaded at run time). Checks: the home
page renders its heading; an API reference page renders the ``Reranker`` class with its methods;
a benchmarks page renders a table and its plot images load (non-zero natural size); the search
box answers "calibration". A PNG screenshot of each is written to ``--screenshots``. Exit status
1 with one line per failed check.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver", "/usr/lib/chromium/chromedriver")


def serve(site: Path):
    """An HTTP server for ``site`` on a free 127.0.0.1 port, in a daemon thread."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # no access log on stderr
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = next((shutil.which(name) for name in CHROMIUM if shutil.which(name)), None)
    driver = next((shutil.which(name) for name in DRIVERS if shutil.which(name)), None)
    if not binary or not driver:
        sys.exit("browser check: needs Debian's chromium and chromium-driver (apt-get install)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def benchmark_page(site: Path) -> str:
    """A generated benchmark page that holds a plot, a maintained benchmark's if there is one."""
    pages = sorted(
        (site / "benchmarks").glob("*/index.html"),
        key=lambda p: (
            p.parent.name != "throughput",
            p.parent.name.startswith("experiments"),
            p.parent.name,
        ),
    )
    for page in pages:
        if "<img" in page.read_text(encoding="utf-8") and page.parent.name != "results":
            return f"benchmarks/{page.parent.name}/"
    return ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=ROOT / "site")
    parser.add_argument("--screenshots", type=Path, default=ROOT / "site-screenshots")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        sys.exit(f"browser check: {args.site}/index.html is missing; run mkdocs build first")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    args.screenshots.mkdir(parents=True, exist_ok=True)
    for old in args.screenshots.glob("*.png"):
        old.unlink()
    server, base = serve(args.site)
    driver = browser()
    wait = WebDriverWait(driver, args.timeout)
    failures = []

    def check(name: str, ok: bool, detail: str) -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
        if not ok:
            failures.append(name)

    def shot(name: str) -> None:
        driver.save_screenshot(str(args.screenshots / f"{name}.png"))

    try:
        driver.get(f"{base}/")
        heading = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "article h1"))
        check(
            "home",
            heading.text.strip() == "crossrank" and "RAG" in driver.page_source,
            f"heading {heading.text!r}",
        )
        shot("home")

        driver.get(f"{base}/reference/crossrank/")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".doc-heading"))
        headings = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".doc-heading")]
        check(
            "api page",
            any("Reranker" in h for h in headings) and any("rank" in h for h in headings),
            f"{len(headings)} documented objects, e.g. {headings[:3]}",
        )
        shot("api-reference")

        page = benchmark_page(args.site)
        check("benchmark page found", bool(page), page or "no generated benchmark page has a plot")
        if page:
            driver.get(f"{base}/{page}")
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "article table"))
            images = driver.find_elements(By.CSS_SELECTOR, "article img")
            wait.until(
                lambda d: all(d.execute_script("return arguments[0].complete", i) for i in images)
            )
            loaded = [driver.execute_script("return arguments[0].naturalWidth", i) for i in images]
            check(
                "benchmark plots",
                bool(images) and all(w > 0 for w in loaded),
                f"{page}: {len(images)} images, natural widths {loaded}",
            )
            shot("benchmarks")

        driver.get(f"{base}/")
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "input.md-search__input"))
        # open search with its keyboard shortcut, then type, as a reader would
        driver.find_element(By.TAG_NAME, "body").send_keys("s")
        box = driver.find_element(By.CSS_SELECTOR, "input.md-search__input")
        wait.until(lambda d: box.is_displayed())
        box.send_keys("calibration")
        # read the results in one script call: the list re-renders while the index answers
        read = (
            "return [...document.querySelectorAll('.md-search-result__item')].map(e => e.innerText)"
        )
        results = wait.until(lambda d: [t for t in d.execute_script(read) if t.strip()])
        titles = [text.splitlines()[0] for text in results[:4]]
        check(
            "search",
            any("alibration" in text for text in results),
            f"{len(results)} results shown for 'calibration', first: {titles}",
        )
        shot("search-calibration")
    except Exception as error:  # a timeout or a missing element: report it as a failed check
        check(
            "browser",
            False,
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
        )
        shot("failure")
    finally:
        driver.quit()
        server.shutdown()
    print(f"screenshots: {args.screenshots}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Regenerate the UI screenshots in docs/: a desktop answer and a phone-sized one.

    .venv/bin/python docs/screenshots.py [--out docs]

Serves the app in this process on 127.0.0.1 over a temporary index of corpus/ and drives
Debian's /usr/bin/chromium (playwright), as the browser tests do:

- ui-answer.png (1400x900): an answer led by its short answer, the cited passage open in the
  source panel, then a refusal;
- ui-refusal.png (1400x900): the refusal's nearest passages unfolded, the second one open;
- ui-phone.png (390x844, the whole page): the answer, the source panel below the chat;
- ui-dark.png (1400x900): the answer with the browser asking for dark mode.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from rag.assistant import Assistant  # importing rag sets the offline environment (rag/__init__.py)
from rag.config import Settings

ROOT = Path(__file__).resolve().parent.parent

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
QUESTION = "What share of microelectronics came from China?"
UNANSWERABLE = "How many penguins live on the moon?"


def answer_and_open(page: object, question: str) -> None:
    """Ask with Enter, wait for the answer, open its first citation in the source panel."""
    answers = page.locator("#rag-chat .rag-answer:not(.rag-streaming)")  # type: ignore[attr-defined]
    before = answers.count()
    page.locator("#rag-question textarea").fill(question)  # type: ignore[attr-defined]
    page.locator("#rag-question textarea").press("Enter")  # type: ignore[attr-defined]
    answers.nth(before).wait_for()
    link = answers.nth(before).locator(".rag-text a.cite").first
    if link.count():
        key = link.get_attribute("href").removeprefix("#cite-")
        link.click()
        page.locator(f'#rag-source-panel mark.cite-mark[data-key="{key}"]').wait_for()  # type: ignore[attr-defined]


def shoot(url: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        shots = [
            ("ui-answer.png", 1400, 900, "light"),
            ("ui-refusal.png", 1400, 900, "light"),
            ("ui-phone.png", 390, 844, "light"),
            ("ui-dark.png", 1400, 900, "dark"),
        ]
        for name, width, height, scheme in shots:
            context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
            page = context.new_page()
            page.goto(url)
            page.locator("#rag-question textarea").wait_for()
            if name == "ui-refusal.png":
                answer_and_open(page, UNANSWERABLE)
                page.locator("#rag-chat details.rag-nearest summary").click()
                page.locator("#rag-chat details.rag-nearest .rag-source-item a.cite").nth(1).click()
                page.locator('#rag-source-panel mark.cite-mark[data-key="0-r2"]').wait_for()
            else:
                answer_and_open(page, QUESTION)
            if name == "ui-answer.png":
                answer_and_open(page, UNANSWERABLE)
            page.mouse.move(0, 0)
            page.wait_for_timeout(300)  # the chat's scroll to its newest message
            page.screenshot(path=str(out / name), full_page=name == "ui-phone.png")
            context.close()
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()

    from ui.app import build_app, launch

    workdir = Path(tempfile.mkdtemp(prefix="rag-screenshots-"))
    try:
        settings = Settings(index_dir=workdir / "index", chroma_url=None, corpus_dir=ROOT / "corpus")
        settings = settings.with_overrides(ui={"host": "127.0.0.1", "port": 0})
        assistant = Assistant.open(settings=settings, create=True)
        assistant.ingest([ROOT / "corpus"])
        blocks = build_app(assistant, settings)
        try:
            shoot(launch(blocks, settings, block=False), args.out)
        finally:
            blocks.close()
            assistant.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

"""The web page of `ragqa serve` in a real headless Chromium: ask, see the marked answer, correct it.

Debian's `chromium` and `chromium-driver` packages drive it through Selenium, pointed at the
system chromedriver; nothing downloads a browser or a driver. Without them the tests skip.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'ragqa[serve]'")
httpx = pytest.importorskip("httpx", reason="httpx is not installed: pip install 'ragqa[test]'")
pytest.importorskip("selenium", reason="selenium is not installed: pip install 'ragqa[test]'")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip(
        "no chromium or chromedriver on PATH: install Debian's chromium and chromium-driver "
        "(apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )

WAIT_S = 30  # every wait in the page is bounded: a broken page fails, it does not hang
BIRDS = (
    "# Birds of Lake Orla\n\n"
    "Lake Orla lies in the hills north of the town of Brenn.\n\n"
    "The heron of Lake Orla is deep violet. It nests in the reeds on the northern shore.\n"
)
TOWN = "# The town of Brenn\n\nBrenn has a market every Thursday. The bridge over the river was built in 1871.\n"
NEST = "Where does the heron nest?"
COLOUR = "What colour is the heron of Lake Orla?"

# Selects [start, end) of an element's text, across the text nodes and the <mark> inside it,
# as a user's drag would: a DOM Range made the document's selection.
SELECT_JS = """
const [container, start, end] = arguments;
const walker = document.createTreeWalker(container, NodeFilter.SHOW_TEXT);
const range = document.createRange();
let seen = 0, node;
while ((node = walker.nextNode())) {
  const len = node.textContent.length;
  if (start >= seen && start <= seen + len) range.setStart(node, start - seen);
  if (end >= seen && end <= seen + len) { range.setEnd(node, end - seen); break; }
  seen += len;
}
const sel = window.getSelection();
sel.removeAllRanges();
sel.addRange(range);
return sel.toString();
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A real `ragqa serve` over a two-document index; yields (base URL, feedback folder)."""
    from rag_qa import Index

    root = tmp_path_factory.mktemp("browser")
    docs = root / "docs"
    docs.mkdir()
    (docs / "birds.md").write_text(BIRDS, encoding="utf-8")
    (docs / "town.md").write_text(TOWN, encoding="utf-8")
    Index.build([docs], root / "index", show_progress=False)
    feedback, port = root / "feedback", _free_port()
    env = {k: v for k, v in os.environ.items() if k != "RAGQA_API_KEY"}
    log = root / "serve.log"  # a file, not a pipe: a full pipe would stall the service
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("ragqa")), "serve", "--index-dir", str(root / "index")]
            + ["--port", str(port), "--feedback-dir", str(feedback)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env, HF_HUB_OFFLINE="1"),
            cwd=root,  # paths are shown relative to the folder the service runs in
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"ragqa serve was not ready after 120 s: {log.read_text()}"
            time.sleep(0.2)
        yield base, feedback
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


@pytest.fixture(scope="module")
def browser(monkeypatch_module):
    """Headless Chromium through the system chromedriver; works as root and as an ordinary user."""
    monkeypatch_module.setenv("SE_OFFLINE", "true")  # Selenium Manager, were it ever called, downloads nothing
    profile = tempfile.mkdtemp(prefix="ragqa-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1100,800")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT_S)
    driver.set_script_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def _ask(driver, base: str, question: str):
    """Loads the page, types ``question``, submits it; returns the first answer's card."""
    driver.get(base + "/")
    box = driver.find_element(By.ID, "question")
    box.send_keys(question)
    driver.find_element(By.ID, "ask-button").click()
    return WebDriverWait(driver, WAIT_S).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#answers .answer")))


def _send(driver, card, button: str) -> str:
    """Clicks ``button`` (a class) in ``card``; returns the note the page shows once /feedback answered."""
    note = card.find_element(By.CSS_SELECTOR, ".status")
    driver.execute_script("arguments[0].textContent = ''; arguments[0].className = 'status'", note)
    card.find_element(By.CSS_SELECTOR, f"button.{button}").click()
    WebDriverWait(driver, WAIT_S).until(lambda _: note.text)
    return note.text


def _stored(feedback: Path) -> list[tuple[str, dict]]:
    """Every (context, question record) in the feedback folder's SQuAD files."""
    out = []
    for path in sorted(feedback.glob("feedback-*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["version"] == "v2.0"
        for article in data["data"]:
            for para in article["paragraphs"]:
                out.extend((para["context"], qa) for qa in para["qas"])
    return out


def test_a_typed_question_shows_its_answer_marked_in_the_passage(served, browser):
    base, feedback = served
    card = _ask(browser, base, COLOUR)
    passage = card.find_element(By.CSS_SELECTOR, ".passage")
    marks = passage.find_elements(By.TAG_NAME, "mark")
    assert [m.text for m in marks] == ["deep violet"]
    shown = browser.execute_script("return arguments[0].textContent", passage)
    assert shown in BIRDS and "The heron of Lake Orla is deep violet." in shown  # the passage, verbatim
    before = browser.execute_script("return arguments[0].firstChild.textContent", passage)
    assert before.endswith("The heron of Lake Orla is ")
    assert card.find_element(By.TAG_NAME, "h2").text.startswith("1. deep violet confidence 0.")
    where = card.find_element(By.CSS_SELECTOR, ".where").text
    assert where.startswith("docs/birds.md:5 (characters ")  # the source file and the answer's line
    assert not browser.find_element(By.ID, "message").text  # no error, no warning

    # "Right" stores the answer the page showed, at its place in the passage.
    note = _send(browser, card, "right")
    assert note.startswith("Thanks: saved to feedback-") and note.endswith(".json")
    right = [(c, qa) for c, qa in _stored(feedback) if qa["question"] == COLOUR]
    assert len(right) == 1 and [a["text"] for a in right[0][1]["answers"]] == ["deep violet"]
    at = right[0][1]["answers"][0]["answer_start"]
    assert right[0][0][at:].startswith("deep violet") and right[0][0] == shown


def test_wrong_then_the_selected_span_is_stored_as_squad(served, browser):
    base, feedback = served
    card = _ask(browser, base, NEST)
    passage = card.find_element(By.CSS_SELECTOR, ".passage")
    marks = [m.text for m in passage.find_elements(By.TAG_NAME, "mark")]
    # the reader's answer is marked: some part of where the heron nests, not "in"
    assert len(marks) == 1 and marks[0] and marks[0] in "the reeds on the northern shore", marks
    use = card.find_element(By.CSS_SELECTOR, "button.use-selection")
    assert not use.is_displayed()
    card.find_element(By.CSS_SELECTOR, "button.wrong").click()
    assert use.is_displayed() and card.find_element(By.CSS_SELECTOR, "button.no-answer").is_displayed()

    # The user drags over " in the reeds on the northern shore": from plain text into and past
    # the start of the <mark>, with the space before it, which the page trims.
    wanted = "in the reeds on the northern shore"
    text = browser.execute_script("return arguments[0].textContent", passage)
    start = text.index(" " + wanted)
    selected = browser.execute_script(SELECT_JS, passage, start, start + 1 + len(wanted))
    assert selected == " " + wanted
    note = _send(browser, card, "use-selection")
    assert note.startswith("Thanks: saved to feedback-"), note

    records = [(c, qa) for c, qa in _stored(feedback) if qa["question"] == NEST]
    assert len(records) == 1
    context, qa = records[0]
    assert not qa["is_impossible"] and [a["text"] for a in qa["answers"]] == [wanted]
    at = qa["answers"][0]["answer_start"]
    assert context[at : at + len(wanted)] == wanted
    assert context == text


def test_no_answer_in_this_passage_is_stored_as_impossible(served, browser):
    base, feedback = served
    card = _ask(browser, base, NEST)
    card.find_element(By.CSS_SELECTOR, "button.wrong").click()
    # With nothing selected, "Use the selected span" says what to do and stores nothing.
    browser.execute_script("window.getSelection().removeAllRanges()")
    before = len(_stored(feedback))
    assert _send(browser, card, "use-selection") == "Select the answer inside the passage first."
    assert len(_stored(feedback)) == before
    assert _send(browser, card, "no-answer").startswith("Thanks: saved to feedback-")
    records = _stored(feedback)
    assert len(records) == before + 1
    impossible = [qa for _, qa in records if qa["question"] == NEST and qa["is_impossible"]]
    assert len(impossible) == 1 and impossible[0]["answers"] == []

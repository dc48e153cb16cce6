"""Pages in a real browser: Playwright drives Debian's chromium (`make test` installs it) against the live hub.

`page` is a fresh browser context on the live ASGI hub (conftest's `hub`), once per width (desktop and phone);
a test using it fails on any console error, uncaught script error, or failed request to the hub's own origin.
`screenshot(page, name)` writes var/test-artifacts/screens/<test>-<name>-<width>.png, and `check_page(page)`
fails a page that scrolls sideways or has a form control without a label.
"""

import asyncio
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
# The project's launch line, verbatim: `--headless` is passed here (so Playwright is told headless=False, and
# adds neither a second one nor its --hide-scrollbars: a page that scrolls sideways shows its scrollbar).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
WIDTHS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
SCREENS = Path(__file__).resolve().parent.parent / "var" / "test-artifacts" / "screens"


@dataclass
class Watch:
    """What one test's page saw go wrong, and what its screenshots are called."""

    test: str
    width: str
    origin: str
    problems: list[str] = field(default_factory=list)


_watches: dict[object, Watch] = {}


@pytest.fixture(scope="session")
def screens() -> Path:
    """This run's screenshots only: the folder is emptied once, when the first browser test starts."""
    shutil.rmtree(SCREENS, ignore_errors=True)
    SCREENS.mkdir(parents=True)
    return SCREENS


@pytest.fixture(scope="module")
def chromium(screens) -> Iterator[object]:
    """One browser per test module; Playwright starts it on a new empty profile (a user-data dir of its own,
    removed after), and each test gets a context of its own in it.

    Playwright's sync API leaves its event loop marked as running in the test's thread for as long as it is
    up, so a module, not the session: a later test's asyncio.run() would refuse to start. Django's
    async-safety check would take that loop for an async context and refuse the ORM in fixtures and tests,
    though the code is plainly sync (the loop is suspended meanwhile): the check is told to look past that
    one loop only, so it still guards the hub's own loop (its thread) and any other.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(f"the browser tests need Debian's chromium at {CHROMIUM}: run `make test`, which installs it")
    import django.utils.asyncio
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, pytest.MonkeyPatch.context() as patch:
        playwrights = asyncio.get_running_loop()

        def running_loop() -> asyncio.AbstractEventLoop:
            loop = asyncio.get_running_loop()
            if loop is playwrights:
                raise RuntimeError("Playwright's sync loop, suspended while the test runs")
            return loop

        patch.setattr(django.utils.asyncio, "get_running_loop", running_loop)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=False, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(params=list(WIDTHS))
def width(request) -> str:
    return request.param


@pytest.fixture
def page(chromium, width, hub, request) -> Iterator[object]:
    """A page in a context of its own (no cookies from another test) on the live hub, at `width`."""
    context = chromium.new_context(viewport=WIDTHS[width], base_url=hub.url)
    page = context.new_page()
    watch = Watch(test=request.node.originalname, width=width, origin=hub.url.rstrip("/"))
    _watches[page] = watch

    def own(url: str) -> bool:
        return url == watch.origin or url.startswith(watch.origin + "/")

    # Chromium asks for /favicon.ico once per browser, not per page: its 404 (the hub has no icon yet) would fail
    # whichever test happened to come first, so it is left out (Playwright does not see that request otherwise).
    def console(message):
        where = message.location.get("url") or page.url
        if message.type == "error" and where != f"{watch.origin}/favicon.ico":
            watch.problems.append(f"console error on {page.url} ({where}): {message.text}")

    def failed(request):
        if own(request.url):
            watch.problems.append(f"request failed: {request.method} {request.url} ({request.failure})")

    def response(response):
        if own(response.url) and response.status >= 400:
            watch.problems.append(f"{response.status} for {response.request.method} {response.url}")

    page.on("console", console)
    page.on("pageerror", lambda error: watch.problems.append(f"script error on {page.url}: {error}"))
    page.on("requestfailed", failed)
    page.on("response", response)
    yield page
    del _watches[page]
    context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A test whose page saw a problem fails (in the test itself, not as an error in teardown)."""
    result = yield
    page = item.funcargs.get("page") if hasattr(item, "funcargs") else None
    watch = _watches.get(page)
    if watch is not None and watch.problems:
        pytest.fail("the page saw problems:\n  " + "\n  ".join(watch.problems), pytrace=False)
    return result


def watch_of(page) -> Watch:
    return _watches[page]


def screenshot(page, name: str) -> Path:
    """The whole page as a test artifact: var/test-artifacts/screens/<test>-<name>-<width>.png."""
    watch = watch_of(page)
    path = SCREENS / f"{watch.test}-{re.sub(r'[^A-Za-z0-9_.]+', '-', name)}-{watch.width}.png"
    page.screenshot(path=path, full_page=True)
    return path


# Elements wider than the viewport (the outermost of each; content that scrolls inside its own box, like a
# <pre> with overflow: auto, is left out), and form controls no label names (a <label>, aria-label/-labelledby).
_OVERFLOW = """() => {
    const root = document.scrollingElement, width = root.clientWidth;
    if (root.scrollWidth <= width) return [];
    const clipped = (el) => {
        for (let up = el.parentElement; up && up !== document.body; up = up.parentElement)
            if (getComputedStyle(up).overflowX !== "visible") return true;
        return false;
    };
    const wide = (el) => el.getBoundingClientRect().right > width + 1;
    const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
        + (el.classList.length ? "." + [...el.classList].join(".") : "");
    return [...document.body.querySelectorAll("*")]
        .filter((el) => wide(el) && !clipped(el) && !(el.parentElement && wide(el.parentElement)))
        .slice(0, 10)
        .map((el) => `${name(el)} reaches ${Math.round(el.getBoundingClientRect().right)}px: `
            + JSON.stringify(el.textContent.trim().slice(0, 60)))
        .concat([`the page is ${root.scrollWidth}px wide in a ${width}px viewport`]);
}"""
_UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea")]
    .filter((el) => !["hidden", "submit", "button", "reset", "image"].includes(el.type))
    .filter((el) => !el.labels.length && !(el.getAttribute("aria-label") || "").trim()
        && !(el.getAttribute("aria-labelledby") || "").split(/\\s+/).some((id) => id && document.getElementById(id)))
    .map((el) => el.outerHTML.slice(0, 200))"""


class SidewaysScroll(AssertionError):
    """A page wider than the viewport (its own type, for a known fault's xfail to name it and nothing else)."""


def check_page(page) -> None:
    """The page does not scroll sideways (at any width; the phone's is the one that catches it), and every
    input, select and textarea has a label."""
    watch = watch_of(page)
    overflow = page.evaluate(_OVERFLOW)
    if overflow:
        raise SidewaysScroll(f"{page.url} scrolls sideways at {watch.width} width:\n  " + "\n  ".join(overflow))
    unlabelled = page.evaluate(_UNLABELLED)
    assert not unlabelled, f"{page.url} has form controls without a label:\n  " + "\n  ".join(unlabelled)

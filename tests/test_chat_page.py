"""The chat page end to end in headless Chromium: type a message, press Send, see the reply.

Chromium is driven over the Chrome DevTools Protocol through ``--remote-debugging-pipe`` (JSON
messages separated by NUL bytes on file descriptors 3 and 4), so the test needs no package beyond the
standard library. It skips where Chromium is not installed (CI installs Debian's ``chromium``).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from serve_fixtures import API_KEY, safety_layer, served  # noqa: F401 (fixtures)

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")


class Browser:
    """Just enough CDP: one page, evaluate JavaScript in it."""

    def __init__(self, profile_dir):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        to_browser_r, from_browser_w = _above_4(to_browser_r), _above_4(from_browser_w)
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile_dir}", "--remote-debugging-pipe", "about:blank"]
        # bash (dash takes only one-digit fds) puts our pipe ends on fds 3 and 4, where Chromium expects them.
        self.log = Path(profile_dir).with_name("chromium.log")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                ["bash", "-c", f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}', CHROMIUM, *flags],
                pass_fds=(to_browser_r, from_browser_w), stdout=log, stderr=log)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id, self._buffer = 0, b""
        targets = self.send("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.send("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]

    def send(self, method: str, session: str | None = None, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                data = os.read(self._from_browser, 1 << 16)
                if not data:
                    tail = self.log.read_text(errors="replace").splitlines()[-15:]
                    raise RuntimeError("Chromium closed the pipe; its log ends:\n" + "\n".join(tail))
                self._buffer += data
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def js(self, expression: str):
        result = self.send("Runtime.evaluate", self.session, expression=expression, awaitPromise=True,
                           returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError(f"waited {timeout} s for {expression}")

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._to_browser)
        os.close(self._from_browser)


def _above_4(fd: int) -> int:
    """The same pipe end on a descriptor above 4, so that moving it onto 3 or 4 clobbers nothing."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


@pytest.fixture
def browser(tmp_path):
    b = Browser(tmp_path / "chromium-profile")
    yield b
    b.close()


def _type_and_send(browser, text: str) -> None:
    browser.js(f"document.getElementById('input').value = {json.dumps(text)}; "
               "document.getElementById('send').click(); true")


def test_type_a_message_and_see_the_reply(served, browser):
    before = len(served.backend.calls)
    browser.send("Page.navigate", browser.session, url=served.url + "/")
    browser.wait_for("document.readyState === 'complete' && !document.getElementById('key-label').hidden")
    assert browser.js("document.getElementById('model').textContent") == "tiny-policy"
    browser.js(f"const k = document.getElementById('api-key'); k.value = {json.dumps(API_KEY)}; "
               "k.dispatchEvent(new Event('change')); true")
    _type_and_send(browser, "I had a rough day at work.")
    state = browser.wait_for("(document.querySelector('.assistant') || {}).dataset?.state !== 'pending' && "
                             "document.querySelector('.assistant')?.dataset.state")
    assert state == "done", browser.js("document.querySelector('.assistant').textContent")
    assert browser.js("document.querySelector('.user').textContent") == "I had a rough day at work."
    reply = browser.js("document.querySelector('.assistant span').textContent")
    assert reply.strip() and len(served.backend.calls) > before  # the served policy answered

    _type_and_send(browser, "I want to kill myself.")
    browser.wait_for("document.querySelectorAll('.assistant')[1]?.dataset.state === 'done'")
    assert browser.js("document.querySelectorAll('.assistant')[1].classList.contains('safety')")
    assert "988" in browser.js("document.querySelectorAll('.assistant')[1].textContent")


def test_page_shows_the_refusal_without_a_key(served, browser):
    browser.send("Page.navigate", browser.session, url=served.url + "/")
    browser.wait_for("document.readyState === 'complete' && !document.getElementById('key-label').hidden")
    browser.js("localStorage.clear(); document.getElementById('api-key').value = ''; true")
    _type_and_send(browser, "hello")
    browser.wait_for("document.querySelector('.assistant')?.dataset.state === 'error'")
    assert "API key" in browser.js("document.querySelector('.assistant').textContent")

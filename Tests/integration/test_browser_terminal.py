"""The dev-mode terminal page end to end: `relay --dev` (its demo pod's
runner is a `relay attach … -- $SHELL` child), the page in headless
Chromium, keystrokes into xterm.js, the shell's output back on the screen."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import HOST, RELAY_BIN, REPO, free_port, relay_env

pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
BANNER_TIMEOUT = 20.0
SCREEN_TIMEOUT = 20.0
MARK = "hello-from-pty"

# The screen as text, one string per row (the DOM renderer pads with NBSP).
ROWS_JS = """
return Array.from(document.querySelectorAll('.xterm-rows > div'))
    .map(d => d.textContent.replace(/\\u00a0/g, ' ').replace(/\\s+$/, ''));
"""


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (from /proc), zombies excluded."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class DevRelay:
    """`relay --dev` (plus `extra_args`) in its own session; stdout read for
    the banner, stderr to a file. `scheme`: what the banner's address starts
    with (https with --tls)."""

    def __init__(self, tmp_path: Path, *extra_args: str, scheme: str = "http"):
        if not (REPO / RELAY_BIN).exists():
            pytest.fail(f"{RELAY_BIN} does not exist: build the relay first")
        self.port = free_port()
        self.stderr_path = tmp_path / "relay-dev.stderr"
        home = tmp_path / "home"
        home.mkdir()
        # A clean bash: no user rc files (HOME is empty), a plain prompt.
        env = relay_env({"SHELL": "/bin/bash", "HOME": str(home), "PS1": "pty$ ",
                         "HISTFILE": "/dev/null", "TERM": "xterm-256color"})
        env.pop("JWT_SECRET")  # dev mode generates one
        self.scheme = scheme
        self.args = [str(REPO / RELAY_BIN), "--dev", "--port", str(self.port), "--web-root", ".cache/web",
                     *extra_args]
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=err, env=env, cwd=REPO, start_new_session=True)
        self.stdout = b""
        self.tree: set[int] = set()

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def page_url(self, timeout: float = BANNER_TIMEOUT) -> str:
        """The address the relay prints after "Open the demo terminal:"."""
        pattern = re.compile(rb"Open the demo terminal:\s*\n\s*(https?://\S+)\s*\n")
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while not (m := pattern.search(self.stdout)):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no demo terminal address on stdout within {timeout:.0f} s; "
                                     f"stdout: {self.stdout!r}\nstderr:\n{self.stderr()}")
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise AssertionError(f"relay closed stdout (exit {self.proc.poll()}) before the address; "
                                         f"stdout: {self.stdout!r}\nstderr:\n{self.stderr()}")
                self.stdout += chunk
        url = m.group(1).decode()
        assert url.startswith(f"{self.scheme}://{HOST}:{self.port}/?token="), url
        self.tree = descendants(self.proc.pid)
        return url

    def stop(self) -> list[int]:
        """SIGTERM to the process group, SIGKILL after 5 s; then waits up to
        5 s for every process it had started (the attach child, the shell,
        which runs in a session of its own) to be gone. Returns the ones that
        lingered (after killing them)."""
        tree = self.tree | descendants(self.proc.pid)
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
            except ProcessLookupError:
                self.proc.wait(timeout=5)
        self.proc.stdout.close()
        deadline = time.monotonic() + 5
        while any(alive(p) for p in tree) and time.monotonic() < deadline:
            time.sleep(0.05)
        lingering = [p for p in tree if alive(p)]
        for p in lingering:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return lingering


@pytest.fixture
def dev_relay(tmp_path):
    relay = DevRelay(tmp_path)
    yield relay
    lingering = relay.stop()
    assert not lingering, f"processes left after stopping the dev relay (killed now): {lingering}"


def start_chromium(tmp_path: Path, *extra_args: str):
    """Headless Chromium under chromedriver (skips the test if absent)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            pytest.skip(f"{path} is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1000,600",
                "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}", *extra_args):
        options.add_argument(arg)
    service = Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(10)
    return driver


@pytest.fixture
def chromium(tmp_path):
    driver = start_chromium(tmp_path)
    yield driver
    driver.quit()


def test_terminal_page_runs_a_shell(dev_relay, chromium, tmp_path):
    """The printed address opens the page; the shell's prompt appears in
    `.xterm-rows`; typing `echo hello-from-pty` + Enter into xterm's helper
    textarea reaches the shell, and its output line `hello-from-pty` (a row
    of its own, besides the echoed command) appears within 20 s."""
    drive_terminal(dev_relay, chromium, tmp_path)


def drive_terminal(dev_relay: DevRelay, driver, tmp_path: Path) -> None:
    """The body of the terminal page test, for any dev relay and driver."""
    url = dev_relay.page_url()
    rows: list[str] = []

    def screen(_driver=None) -> list[str]:
        nonlocal rows
        rows = driver.execute_script(ROWS_JS) or []
        return rows

    def fail(what: str):
        shot = tmp_path / "terminal.png"
        driver.save_screenshot(str(shot))
        status = driver.execute_script("const s = document.getElementById('status'); return s && s.textContent;")
        text = "\n".join(rows)
        pytest.fail(f"{what}\npage status: {status!r}\nscreen:\n{text}\nscreenshot: {shot}\n"
                    f"relay stderr:\n{dev_relay.stderr()[-5000:]}")

    driver.get(url)
    try:
        WebDriverWait(driver, SCREEN_TIMEOUT, poll_frequency=0.1).until(
            lambda d: any(r.strip() for r in screen()))
    except TimeoutException:
        fail(f"no prompt on the terminal within {SCREEN_TIMEOUT:.0f} s")

    textarea = driver.find_element(By.CSS_SELECTOR, ".xterm-helper-textarea")
    textarea.send_keys(f"echo {MARK}" + Keys.ENTER)

    try:
        WebDriverWait(driver, SCREEN_TIMEOUT, poll_frequency=0.1).until(
            lambda d: any(r.strip() == MARK for r in screen()))
    except TimeoutException:
        fail(f"no output line {MARK!r} on the terminal within {SCREEN_TIMEOUT:.0f} s")
    assert any(f"echo {MARK}" in r for r in rows), f"the typed command is not on the screen:\n" + "\n".join(rows)

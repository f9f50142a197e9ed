"""Headless Chromium for tests: a page's DOM after it loaded, and a screenshot of it.

Chromium runs as the machine's package installs it (``chromium``), never a
downloaded browser, with the flags that keep it off the network: no
background traffic, no component updates, no sync, a fresh profile.
``.ci/run`` installs it; elsewhere a test without it is skipped, unless
``DRIFTLINE_REQUIRE_BROWSER`` is set, when it fails.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox will not start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def chromium() -> str:
    """The Chromium executable, or skip (fail when ``DRIFTLINE_REQUIRE_BROWSER`` is set)."""
    found = os.environ.get("DRIFTLINE_CHROMIUM") or next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None
    )
    if found is None:
        if os.environ.get("DRIFTLINE_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required here but not installed (apt-get install chromium)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return found


def _run(arguments: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="driftline-chromium-") as profile:
        return subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *arguments],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def dump_dom(url: str, *, timeout: float = 60.0) -> str:
    """The page's DOM as Chromium serialises it once loaded."""
    done = _run(["--dump-dom", url], timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def screenshot(url: str, path: Path, *, width: int = 1280, height: int = 1600) -> Path:
    """A PNG of the page's first ``width`` by ``height`` pixels, at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    done = _run([f"--window-size={width},{height}", f"--screenshot={path}", url], 60.0)
    assert done.returncode == 0, done.stderr[-2000:]
    assert path.exists(), done.stderr[-2000:]
    return path


def png_size(path: Path) -> tuple[int, int]:
    """A PNG's width and height, from its header."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is no PNG"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")

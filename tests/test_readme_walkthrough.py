"""The README's walkthrough works as pasted: its marked block runs in bash, from the directory a
real `handoff serve` was started in (the quick start's embedded store, on a port of its own), and
prints the last line the README says it prints. The README cannot drift from the service."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_cli_failures import clean_env, serving_from

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
BLOCK = "<!-- walkthrough: tests/test_readme_walkthrough.py runs the next block -->"
OUTPUT = "<!-- walkthrough-output -->"
# Where the README's commands expect the service, as the quick start starts it.
QUICK_START_URL = "http://127.0.0.1:8080"


def block_after(marker: str) -> str:
    """The fenced block right after `marker` in the README."""
    found = re.search(re.escape(marker) + r"\n```[a-z]*\n(.*?)\n```", README, re.DOTALL)
    assert found, f"the README lost its {marker!r} block"
    return found.group(1)


@pytest.fixture
def clone(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A directory like a clone after the quick start (`.venv`, then `handoff serve` run there),
    with the server running; answers the directory and its port."""
    for tool in ("bash", "curl", "jq"):
        if shutil.which(tool) is None:
            if os.environ.get("CI"):
                pytest.fail(f"{tool} is missing: CI must install it (see .ci/run)")
            pytest.skip(f"the walkthrough needs {tool} (apt-get install {tool})")
    home = tmp_path / "handoff"
    home.mkdir()
    # The environment these tests run in is the one the quick start installs.
    assert (Path(sys.prefix) / "bin" / "handoff").exists(), "handoff is not installed here"
    (home / ".venv").symlink_to(Path(sys.prefix))
    with serving_from(home) as port:
        yield home, port


def test_the_walkthrough_runs_as_pasted_and_prints_what_the_readme_shows(
        clone: tuple[Path, int]) -> None:
    home, port = clone
    script = block_after(BLOCK)
    assert script.count(QUICK_START_URL) == 1, "the block names the service once, as $H"
    ran = subprocess.run(["bash", "-euo", "pipefail", "-c",
                          script.replace(QUICK_START_URL, f"http://127.0.0.1:{port}")],
                         cwd=home, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    printed = ran.stdout.splitlines()
    # Every answer was a success: no step printed a problem+json.
    assert not [line for line in printed if "handoff.dev/problems" in line], ran.stdout
    # The keys were minted in the running server's own store.
    assert ran.stderr.count("shared with the handoff serve running on it") == 3, ran.stderr
    assert re.fullmatch(r"continuation code: \d{6}", printed[1]), printed
    assert printed[-2].startswith(
        f"accepted by agent-7; the panel: http://127.0.0.1:{port}/desk/#token=dt_"), printed
    assert printed[-1] == block_after(OUTPUT)

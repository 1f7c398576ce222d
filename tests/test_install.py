"""The environment `make install` builds: current requests, and no dependency conflict but one pin.

torchattacks' metadata pins ``requests~=2.25.1`` although it never imports requests; the
Makefile installs it with ``--no-deps`` so that the environment keeps a requests release
without the published advisories of 2.25 (README, "Install").
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.version import Version

import torchattacks


def test_requests_is_current():
    assert Version(metadata.version("requests")) >= Version("2.32.4")


def test_torchattacks_never_imports_requests():
    package = Path(torchattacks.__file__).parent
    sources = [p.read_text() for p in package.rglob("*.py")]
    assert sources and not any(re.search(r"^\s*(import|from)\s+requests\b", s, re.M) for s in sources)


def test_pip_check_reports_only_torchattacks_requests_pin():
    res = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    problems = [line for line in res.stdout.splitlines() if line.strip() and "No broken requirements" not in line]
    unexpected = [line for line in problems if not line.startswith("torchattacks ") or "requests" not in line]
    assert not unexpected, res.stdout

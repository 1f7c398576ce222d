"""Provenance: the revision (marked when the code differs from it), versions, checksums."""

from __future__ import annotations

import hashlib
import subprocess

from advrecover.report import provenance


def git(cwd, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args], cwd=cwd, check=True,
                   capture_output=True)


def test_revision_outside_git_and_with_changed_code(tmp_path):
    assert provenance.revision(tmp_path).startswith("unknown")
    (tmp_path / "src").mkdir()
    (tmp_path / "src/a.py").write_text("x = 1\n")
    (tmp_path / "notes.txt").write_text("n\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "c")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    (tmp_path / "notes.txt").write_text("changed, not code\n")
    assert provenance.revision(tmp_path) == head
    (tmp_path / "src/a.py").write_text("x = 2\n")
    assert provenance.revision(tmp_path) == head + " with uncommitted changes to the code"


def test_versions_and_checksums(tmp_path):
    versions = provenance.versions()
    assert set(provenance.LIBRARIES) <= set(versions) and versions["torch"][0].isdigit()
    a = tmp_path / "a.h5"
    a.write_bytes(b"abc")
    assert provenance.checksums([a], {a}) == [(str(a), hashlib.sha256(b"abc").hexdigest(), 3, True)]

"""The repository stands alone: no tracked file points at ``../shared``, which a user's clone
does not have (the project's own copies live in ``docs/`` and ``evals/data/``)."""

from __future__ import annotations

import subprocess

import pytest

from .conftest import ROOT

OUTSIDE = ("../shared", "/work/shared")


def test_no_tracked_file_points_outside_the_repository() -> None:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    offenders = []
    for name in filter(None, listed.decode().split("\0")):
        path = ROOT / name
        if name == "tests/test_repository.py" or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:4096]:
            continue  # binary
        text = data.decode("utf-8", errors="replace")
        offenders += [f"{name}: {needle}" for needle in OUTSIDE if needle in text]
    assert not offenders, offenders

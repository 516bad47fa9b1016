"""The code version: the package version and, from a git checkout, its commit (``0.1.0+g1a2b3c4d5e6f``;
``.dirty`` and a hash of the uncommitted diff when there is one). ``cdp --version`` prints it and
``meta.run_manifest.code_version`` records it, so a run says which code wrote a table and a stage is not
reused across code changes."""

from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path

from cdp_spark import __version__


@functools.cache
def code_version() -> str:
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():
        return __version__  # an installed wheel: no checkout of this project to ask
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        changes = subprocess.run(["git", "-C", str(root), "diff", "HEAD"], capture_output=True, timeout=20,
                                 check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return __version__  # no git, or not a git checkout (a source archive)
    # uncommitted changes get their own hash, so an edited checkout never reuses results of other code
    dirty = f".dirty{hashlib.sha256(changes).hexdigest()[:8]}" if changes.strip() else ""
    return f"{__version__}+g{commit}{dirty}" if commit else __version__

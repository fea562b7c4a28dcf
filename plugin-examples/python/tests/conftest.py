"""Where the installed console scripts are."""

from __future__ import annotations

import sys
from pathlib import Path


def script(name: str) -> str:
    """The console script ``name`` beside this interpreter; fails (does not
    skip) if the examples are not installed."""
    path = Path(sys.executable).parent / name
    assert path.is_file(), (
        f"{path} is missing: install the examples with scripts/tools "
        "(pip install -e plugin-sdk-py -e plugin-examples/python)"
    )
    return str(path)

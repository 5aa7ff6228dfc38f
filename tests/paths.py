"""Where the real Binance recordings are.

``tests/data`` (in the repository, README there) holds the cryptofeed captures whole and the start of each
hftbacktest capture: the suite needs nothing else. The complete captures live outside the repository, in
``../shared/data/recordings`` beside the checkout or in ``$BINANCE_WS_RECORDINGS``; they are optional, and
the few tests that need a complete file skip (with the reason) when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
"""The in-repository copies (cryptofeed whole, hftbacktest trimmed): always present."""
SHARED = Path(os.environ.get("BINANCE_WS_RECORDINGS") or REPO.parent / "shared" / "data" / "recordings")
"""The complete captures, when this machine has them."""
RECORDINGS = DATA
"""Where ``RECORDINGS / name`` finds every file the suite reads by name."""


def recording(name: str) -> Path:
    """``name`` from ``tests/data`` or, failing that, the shared folder; the test skips if neither has it."""
    for folder in (DATA, SHARED):
        if (folder / name).is_file():
            return folder / name
    pytest.skip(f"recording {name} is in neither {DATA} nor {SHARED}")


def complete_recording(name: str) -> Path:
    """The complete capture ``name`` (``tests/data`` may hold only its start); skips when it is absent."""
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"needs the complete capture {name}: not in {SHARED} (set BINANCE_WS_RECORDINGS)")
    return path

"""Where the shared real recordings are: ``../shared/data/recordings`` beside the checkout (as on every
developer machine and in CI), or ``$BINANCE_WS_RECORDINGS``."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECORDINGS = Path(os.environ.get("BINANCE_WS_RECORDINGS") or REPO.parent / "shared" / "data" / "recordings")

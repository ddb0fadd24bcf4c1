"""The SMTP adapter's peer fixtures live in ``smtp_peers`` (importable by the tests)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from smtp_peers import clock, make_channel, openssl, pki, relay

__all__ = ["clock", "make_channel", "openssl", "pki", "relay"]

"""The instants the suite's clocks are frozen at (see the `clock` marker in conftest)."""

from datetime import UTC, datetime

# 03:00 UK time (GMT, so 03:00 UTC) on Sunday 29 November 2026, when the night
# registrars hold tier 1.
SUITE_NIGHT = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)

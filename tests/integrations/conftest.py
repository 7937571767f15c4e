"""Fixtures for the imaging and PACS tests.

The Orthanc fixtures come from tests/services/orthanc.py; they are imported here only
while the root conftest does not list that module in ``pytest_plugins``.
"""

from __future__ import annotations

import tests.conftest as root

if "tests.services.orthanc" not in getattr(root, "pytest_plugins", []):
    from tests.services.orthanc import orthanc, pacs_proxy, running_orthanc  # noqa: F401

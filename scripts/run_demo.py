"""`make run`: start goldenhour on 127.0.0.1 for a demo and print how to sign in."""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from app import create_app, serve  # noqa: E402
from scripts import demo_pacs  # noqa: E402
from workflow.seed import DEMO_PASSWORD, demo_logins  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    os.environ.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{args.port}")
    # The demo's rota extends itself, so a demo left running keeps someone on call.
    os.environ.setdefault("GOLDENHOUR_DEMO_ROTA", "1")
    # The demo people sign in with the shared demo password alone; production requires
    # an authenticator app for specialists, audit leads and admins.
    os.environ.setdefault("GOLDENHOUR_REQUIRE_2FA_ROLES", "")
    app = create_app()
    url = f"http://127.0.0.1:{args.port}/"
    print("\n  goldenhour is starting at " + url)
    print(f"  Demo logins (password for all: {DEMO_PASSWORD}):")
    if not app.config["REQUIRE_2FA_ROLES"]:
        print("  (two-factor sign-in is not required here; anyone may turn it on from Home)")
    for email, what in demo_logins():
        print(f"    {email:<40} {what}")
    demo_pacs.start(app)  # a local Orthanc with the sample head CT, when installed
    print("  Stop with Ctrl-C.\n", flush=True)
    serve(app, args.port)


if __name__ == "__main__":
    main()

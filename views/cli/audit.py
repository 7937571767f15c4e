"""`flask audit verify`, `flask audit anchor`, `flask audit proof <referral id>`."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup

audit_cli = AppGroup("audit", help="Audit and integrity.")


@audit_cli.command("verify")
@click.option("--full", is_flag=True,
              help="walk every referral's chain, whatever the last check verified")
def verify(full: bool):
    """Check the event chains, stored records, the access log and the published anchors;
    exit 1 naming the first problems. Without --full, on PostgreSQL with anchors,
    only what changed since the anchor the last clean check verified (the nightly
    check, docs/ARCHITECTURE.md); otherwise everything."""
    from workflow.audit import nightly

    report = nightly.run(full=full)
    if report.ok:
        scope = "chains intact" if report.full else \
            "chains intact since the last verified anchor (--full walks everything)"
        click.echo(f"OK: {report.referrals_checked} referrals, {report.events_checked} events, "
                   f"{scope}")
        return
    for problem in report.problems[:20]:
        click.echo(f"TAMPERED: {problem}", err=True)
    if len(report.problems) > 20:
        click.echo(f"... and {len(report.problems) - 20} more", err=True)
    raise SystemExit(1)


@audit_cli.command("anchor")
def anchor():
    """Sign the chain heads' Merkle root and append it to GOLDENHOUR_ANCHOR_LOG."""
    from integrations.anchor_log import AnchorLogError
    from workflow.audit import anchors

    key_file, log_file = (current_app.config.get("ANCHOR_KEY_FILE"),
                          current_app.config.get("ANCHOR_LOG"))
    if not key_file or not log_file:
        raise click.ClickException("set GOLDENHOUR_ANCHOR_KEY_FILE and GOLDENHOUR_ANCHOR_LOG "
                                   "to anchor")
    try:
        entry = anchors.anchor(key_file, log_file)
    except AnchorLogError as error:
        raise click.ClickException(str(error)) from None
    head = entry["tree_head"]
    click.echo(f"anchored {head['referrals']} referrals and the access log (seq "
               f"{head['access_log_seq']}) at {head['at']}: root {head['root']}")


@audit_cli.command("proof")
@click.argument("referral_id", type=int)
def proof(referral_id: int):
    """Print the inclusion proof of a referral's chain head in the latest anchor (JSON,
    checked by tools/verify_proof.py)."""
    from integrations.anchor_log import AnchorLogError
    from workflow.audit import anchors

    try:
        click.echo(json.dumps(anchors.proof(referral_id), indent=2, sort_keys=True))
    except (anchors.AnchorError, AnchorLogError) as error:
        raise click.ClickException(str(error)) from None

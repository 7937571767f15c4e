"""Paging: escalation policies, the sweep that sends due pages, and what comes back."""

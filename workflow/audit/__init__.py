"""Audit: decision records, the integrity check, clocks and statistics for audit leads."""

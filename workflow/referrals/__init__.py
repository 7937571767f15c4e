"""Referrals: the state machine, the actions on it, their input, and who may see what."""

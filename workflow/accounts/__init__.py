"""Accounts: users, sign-in, API tokens, and the policy of who may do what."""

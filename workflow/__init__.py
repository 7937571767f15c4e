"""The domain: referrals, paging, clocks, accounts. Free of Flask request objects."""

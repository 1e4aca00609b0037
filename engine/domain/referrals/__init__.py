"""Referral rewards for both sides: codes, programmes (``referrals.yaml``), attribution, fraud
checks, caps and clawback — decided by pure functions, recorded as events with their reasons."""

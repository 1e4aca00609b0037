"""Marketing spend: what the lender paid for its leads (campaigns, partners, events)."""

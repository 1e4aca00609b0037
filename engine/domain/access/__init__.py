"""Who may call huoke from outside: API keys with a role, and the audit trail of what they did."""

"""Staff authentication and record-level access: roles, passwords, tokens, API keys, the Actor."""

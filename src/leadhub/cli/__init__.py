"""The `leadhub` command line."""

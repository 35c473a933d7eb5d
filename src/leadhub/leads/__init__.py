"""Leads: the one intake path, what an open lead is, and (later) workflow and assignment."""

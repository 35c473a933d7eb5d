"""Knowlarity calls: push (webhook) and call-log poll (sync) into customers, leads and calls."""

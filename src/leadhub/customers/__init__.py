"""Customers: one per canonical phone number."""

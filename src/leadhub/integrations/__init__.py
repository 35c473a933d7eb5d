"""Channels: the intake inbox and one package per vendor."""

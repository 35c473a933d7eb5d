"""Moving a legacy database to customers: backfill, repair, verify, undo."""

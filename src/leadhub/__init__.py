"""leadhub: lead-to-customer CRM."""

__version__ = "0.1.0"

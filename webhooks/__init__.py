"""The HTTP edge for storefront calls: verify, dedupe, hand off, answer. No rule logic here."""
from webhooks.edge import bp

__all__ = ["bp"]

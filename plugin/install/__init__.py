"""App-store installation: one module per platform, each a Flask blueprint that takes a store
from "install" to a connected, active shop with its webhooks and default rules."""

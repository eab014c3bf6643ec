"""Platform connectors. Each package exposes the same small interface (see ``base``)."""

"""Catalogue, event log, loaders, validation, splits and the embedded demo data."""

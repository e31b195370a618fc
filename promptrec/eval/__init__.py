"""Offline evaluation: ranking metrics, protocols and reports."""

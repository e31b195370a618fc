"""Jinja templates from prompts/ that turn items, histories and candidates into text."""

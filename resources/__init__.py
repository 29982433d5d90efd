"""Bundled configs, demo-data recipe, icons and style sheet."""

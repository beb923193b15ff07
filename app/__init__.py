"""Sluice: the core shared by the web app and the worker, plus the web app itself."""

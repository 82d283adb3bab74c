"""Modes: each is one composition of stage handlers run by ``pipeline.runner.Runner``."""

"""Adapters that let other frameworks use a ragqa index."""

"""Fuzzing from the protocol schemas: hypothesis strategies and mutations."""

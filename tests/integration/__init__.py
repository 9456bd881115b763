"""Integration tests: real worker processes on a private SQLite file per test."""

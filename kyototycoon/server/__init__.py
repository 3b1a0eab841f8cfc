"""The embedded Kyoto Tycoon-compatible server (storage engine and protocol handlers)."""

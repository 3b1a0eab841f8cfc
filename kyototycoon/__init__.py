"""Kyoto Tycoon client, codecs, replication consumer and embedded server."""
from .__about__ import __version__
from .errors import KyotoTycoonException

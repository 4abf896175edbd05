"""handoff: omnichannel context hand-off middleware."""

__version__ = "0.1.0"

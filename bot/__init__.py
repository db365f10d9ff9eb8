"""A LINE chatbot that keeps residents safe (Kumamoto City, Minato City)."""

__version__ = "0.1.0"

"""massiva: bulk certified e-mail (PEC) through Openapi's PEC Massiva API."""

__version__ = "0.1.0"

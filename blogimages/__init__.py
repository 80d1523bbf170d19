"""blogimages: an image pipeline for the editors of a Django blog."""

__version__ = "0.2.0"

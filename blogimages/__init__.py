"""blogimages: an image pipeline for the editors of a Django blog."""

__version__ = "0.1.0"

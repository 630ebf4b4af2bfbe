"""The sources of the notebooks, one module per lesson (``CELLS``)."""

"""The ``fusion`` command line."""

"""Data layer: the Sample contract, sources, templates, collation."""

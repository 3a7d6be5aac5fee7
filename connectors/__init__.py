"""Source systems -> Documents. Knows HTTP APIs and file formats; knows nothing of the index."""

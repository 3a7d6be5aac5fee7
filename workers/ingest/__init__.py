"""The source path: the source registry, syncing sources into the index, sync state and status."""

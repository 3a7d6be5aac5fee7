"""Chat front doors (Slack, Teams) and answer rendering. Knows nothing of the index."""

"""Slack's front door: events and commands in, request signatures checked, questions taken."""

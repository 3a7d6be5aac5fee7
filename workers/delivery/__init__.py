"""Answers on their way to the chat platforms: the thread protocol, rendering, each platform."""

"""Teams' front door: activities in, Bot Framework tokens checked, questions taken, and
the app package an admin uploads."""

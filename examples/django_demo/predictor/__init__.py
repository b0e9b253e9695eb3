"""The demo's one app: a prediction page and a JSON API, both answered by modeld."""

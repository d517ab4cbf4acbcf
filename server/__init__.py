"""The one HTTP server for people and programs: the API and the web apps on one origin (server/main.py)."""

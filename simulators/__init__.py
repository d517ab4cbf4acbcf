"""Simulators of the outside world for the dev stack and the tests: each speaks the real protocol (SMTP, an SMS
provider's HTTP API, a payment rail) and runs as a process of its own; the platform reaches it through the same
adapter it would use for the real thing, chosen by settings."""

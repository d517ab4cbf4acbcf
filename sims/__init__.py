"""Simulators of the outside world (a payment rail, ...): each its own process, speaking HTTP only."""

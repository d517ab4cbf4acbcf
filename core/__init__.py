"""The pure domain of bankstream: money, commands, events, validation, settings, topics. No I/O."""

"""Avro schemas (one .avsc per command and event) and the one codec every process uses."""

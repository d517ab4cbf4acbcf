"""The REST API: commands onto Kafka, queries from read models. Imports core/ and schemas/ only."""

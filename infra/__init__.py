"""The platform's edge to Kafka and to its own processes, shared by api/, streams/ and cli/ (never by core/).

kafka: group-less consumers, end offsets, `read_topic` and `TopicFollower`; producer: `create_producer`;
records: the `Record` protocol and `header()`; topics: loading topics.yaml; logs: JSON logging and the trace
header; kafka_fetch: client-side long polling for the embedded broker; clock: a process's business time (bank.clock).
"""

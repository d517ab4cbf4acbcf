"""Fraud and AML scoring, the pure part: rules as data, per-account/customer features, sanctions screening.

`rules` loads and validates a versioned YAML rule set; `features` folds money movements into the state the
rules' windows need; `sanctions` screens counterparty names against an SDN-style list; `evaluate` turns a
movement plus that state into an `Assessment`. No I/O: the stream agent, the back-test and the CLI wire it.
"""

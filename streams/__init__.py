"""The Faust application: the ledger agent, the transfer saga, dead letters. Imports core/ and schemas/ only."""

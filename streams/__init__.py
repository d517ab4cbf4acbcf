"""The stream workers: the batch engine and its agents (ledger, risk, transfer saga), projections, notifier, scheduler.
Imports core/, infra/ and schemas/, never api/."""

"""Per-project secrets (encrypted at rest) and vars (plain configuration values).

`keys` holds the keys secrets are encrypted under, `store` the rows, `references` what a
flow names, `masking` the rule that a secret's value never surfaces in what is recorded,
returned or logged.
"""

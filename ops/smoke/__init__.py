"""The smoke test (``python -m ops.smoke``, ``./dev smoke``): a real Sluice, checked over HTTP.

Without ``--url`` it starts `sluice serve` on a temporary embedded database and stops it at
the end; with one it starts nothing. It checks /health and /ready, deploys a flow, sends sync
webhooks and checks the replies, runs a flow with a 5-second delay and one that waits for its
resume URL, and (unless ``--skip-memory``) sends 5,000 webhooks and fails if the server's
resident memory grows by 50 MB or more. It exits 0 only when every step passed.
"""

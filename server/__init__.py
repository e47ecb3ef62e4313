"""The coordinator: the Flower ServerApp, update validation, the ledger, checkpoints, release."""

"""What owners and coordinator share: configuration, the ledger, accountant maths, atomic writes.

The bottom package: it imports neither ``client/`` nor ``server/``, so an owner's
code never depends on the coordinator's and both read the same formats.
"""

"""The ground floor: config types, errors, atomic writes, locking, distributed helpers, progress.

Everything else in the package may import from here; nothing here imports from the floors above.
"""

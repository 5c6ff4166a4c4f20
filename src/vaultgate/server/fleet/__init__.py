"""What keeps several workers and nodes on one database behaving as one vault.

``changes``: a counter every invalidating change bumps, so caches everywhere know when to stop
trusting themselves. ``admission``: the checks a use must still pass inside the very transaction
that records it (one replay window, exact rate limits, no decision on a stale view). ``memory``:
each worker hands what a burst freed back to the system.
"""

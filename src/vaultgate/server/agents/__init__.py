"""Managed agents (the official client's ``app.agents``) and their keys: who an agent key is.

Never decides a use itself: it states the verified agent, which policy and audit then read.
"""

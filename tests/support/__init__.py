"""Test support: real servers on loopback (the vault, a recording upstream)."""

from support.servers import Recorded, Upstream, Vault, free_port, run_upstream, run_vault

__all__ = ["Recorded", "Upstream", "Vault", "free_port", "run_upstream", "run_vault"]

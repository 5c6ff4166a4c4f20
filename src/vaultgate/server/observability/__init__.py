"""What an operator watches: the Prometheus metrics of a vault process."""

"""``make bench``: the vault's hot paths measured side by side with a direct call and nginx."""

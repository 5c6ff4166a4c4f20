"""The portal's pages, one module per tab; each handler parses a form, calls one service method
and renders or redirects."""

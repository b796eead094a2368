"""``lmkernel console``: a local web page over the runs folder — runs and their reports, comparisons, new
runs from a spec with live progress, a playground and a server's monitor.

The page is static files shipped in this package (no CDN, no web fonts: it works offline and talks only to
its own server); ``app.create_console`` builds the FastAPI app behind it with the same keys and Host checks
as ``lmkernel serve``.
"""

from .app import create_console

__all__ = ["create_console"]

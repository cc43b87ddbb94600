"""The bundled sandbox platform: a Mastodon API subset with fault injection (see server.make_server).
Stands alone: imports no Vigie package (.importlinter)."""

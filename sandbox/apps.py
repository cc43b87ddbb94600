"""The bundled sandbox platform: a Mastodon-compatible fake with fault injection."""
from django.apps import AppConfig


class SandboxConfig(AppConfig):
    name = "sandbox"
    verbose_name = "Sandbox platform"

"""The SSL contexts the configuration names, built the same way by check-config, run and reload.

A CA bundle without a certificate, or a key that does not match its certificate, is a
configuration problem with a key path, found before anything starts or changes.
"""

from __future__ import annotations

import ssl

from shim.config.errors import ConfigError, ConfigProblem
from shim.config.model import Config, TlsConfig, UpstreamConfig


def upstream_context(upstream: UpstreamConfig) -> ssl.SSLContext | bool:
    """The context that verifies an https portal (`True`: aiohttp's default, for http)."""
    if upstream.url.scheme != "https":
        return True
    context = ssl.create_default_context()
    if upstream.ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(upstream.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise _problem(
                "upstream.ca_file",
                f"{str(upstream.ca_file)!r} holds no usable PEM certificate ({_reason(exc)}); "
                "give a PEM bundle with the CA that signed the portal's certificate",
            ) from None
    return context


def listener_context(tls: TlsConfig | None) -> ssl.SSLContext | None:
    """The public listener's server context, or None without `tls:`."""
    if tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise _problem(
            "tls",
            f"cannot load cert_file {str(tls.cert_file)!r} with key_file {str(tls.key_file)!r} "
            f"({_reason(exc)}); give a PEM certificate chain and the unencrypted PEM key "
            "that matches it",
        ) from None
    return context


def check_contexts(config: Config, source: str = "") -> None:
    """Build every context the configuration names; raise one `ConfigError` for all problems."""
    problems: list[ConfigProblem] = []
    for build in (lambda: upstream_context(config.upstream), lambda: listener_context(config.tls)):
        try:
            build()
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems, source)


def _problem(path: str, message: str) -> ConfigError:
    return ConfigError([ConfigProblem(path, message)])


def _reason(exc: OSError | ssl.SSLError) -> str:
    return str(getattr(exc, "reason", None) or exc.strerror or exc)

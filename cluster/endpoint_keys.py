"""Which API key an OpenAI-compatible endpoint gets, for the jobs that call one (the evaluation's
endpoint candidates, the serving benchmark).

- The platform's own key (``ONPREM_API_KEY``) goes only to **the platform's own address**: the
  Serve HTTP host and port of ``serve/config.yaml`` (``http_options``: ``127.0.0.1:8000`` here;
  the port as ``ONPREM_SERVE_PORT`` moves it for ``python -m serve deploy``; a loopback or
  wildcard host means this machine's loopback names, ``127.0.0.1``, ``localhost``, ``::1``, at
  that port), and every URL listed in ``ONPREM_API_URL`` (comma-separated; the on-prem
  setup sets the head's ``http://<head>:8000``, the k8s manifests the RayService's Service).
  Scheme, host and port must all match.
- Any other endpoint gets the key its config names (``api_key_env``), or none when it names none;
  naming ``ONPREM_API_KEY`` for it is an error.
- A key never goes over plain ``http`` to a host that is not loopback, unless that URL is the
  platform's own and listed explicitly in ``ONPREM_API_URL`` (the operator's private network).

Pure functions of the URL, the config and the environment::

    key = endpoint_key("https://api.openai.com/v1", "OPENAI_API_KEY")   # the named key
    key = endpoint_key("http://127.0.0.1:8000/v1", None)                # ONPREM_API_KEY
    key = endpoint_key("https://api.openai.com/v1", None)               # None: no key
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import yaml

PLATFORM_KEY_ENV = "ONPREM_API_KEY"
PLATFORM_URL_ENV = "ONPREM_API_URL"
SERVE_CONFIG = Path(__file__).resolve().parents[1] / "serve" / "config.yaml"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")

Origin = tuple[str, str, int]  # scheme, host, port


class EndpointKeyError(ValueError):
    """A key that must not be sent, or a named key that is missing: a config error."""


def origin(url: str) -> Origin:
    """(scheme, host, port) of a URL, with the scheme's default port filled in."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme, 0)
    return scheme, (parts.hostname or "").lower(), port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve_origins(serve_config: Path, env: Mapping[str, str]) -> set[Origin]:
    """The local Serve app's address, from ``http_options`` of its config (and the port
    ``python -m serve deploy`` takes from ``ONPREM_SERVE_PORT``)."""
    try:
        http = (yaml.safe_load(serve_config.read_text()) or {}).get("http_options") or {}
    except OSError:
        return set()
    host = str(http.get("host", "127.0.0.1")).lower()
    port = int(env.get("ONPREM_SERVE_PORT") or http.get("port", 8000))
    wildcard = host in ("0.0.0.0", "::", "")
    hosts = LOOPBACK_NAMES if wildcard or is_loopback(host) else (host,)
    return {("http", h, port) for h in hosts}


def listed_origins(env: Mapping[str, str] | None = None) -> set[Origin]:
    """The platform URLs configured explicitly in ``ONPREM_API_URL``."""
    env = os.environ if env is None else env
    return {origin(u) for u in env.get(PLATFORM_URL_ENV, "").split(",") if u.strip()}


def platform_origins(
    env: Mapping[str, str] | None = None, serve_config: Path = SERVE_CONFIG
) -> set[Origin]:
    env = os.environ if env is None else env
    return _serve_origins(serve_config, env) | listed_origins(env)


def endpoint_key(
    url: str,
    key_env: str | None,
    *,
    field: str = "api_key_env",
    env: Mapping[str, str] | None = None,
    serve_config: Path = SERVE_CONFIG,
) -> str | None:
    """The key to send to ``url`` (None: send none), given the variable the config names
    (``key_env``, None when it names none). Raises :class:`EndpointKeyError`, naming ``field``,
    for the platform's key asked for a foreign endpoint, a named variable that is not set, and
    a key over plain http to a host that is not loopback."""
    env = os.environ if env is None else env
    where = origin(url)
    own = where in platform_origins(env, serve_config)
    if key_env == PLATFORM_KEY_ENV and not own:
        mine = ", ".join(
            sorted(f"{s}://{h}:{p}" for s, h, p in platform_origins(env, serve_config))
        )
        raise EndpointKeyError(
            f"{field} = {key_env!r} for {url}: that is the platform's own API key, and it goes "
            f"only to the platform's own address ({mine}). Fix: name the endpoint's own key "
            f"variable (e.g. OPENAI_API_KEY), leave {field} out to send no key, or, if {url} is "
            f"this platform, list it in {PLATFORM_URL_ENV}"
        )
    if key_env is None:
        key_env = PLATFORM_KEY_ENV if own else None
    elif key_env not in env:
        raise EndpointKeyError(
            f"{field} = {key_env!r} is not set in the environment. Fix: export {key_env}=<key> "
            "before running (the key never goes in the config file)"
        )
    key = env.get(key_env) if key_env else None
    scheme, host, _ = where
    if key and scheme == "http" and not is_loopback(host) and where not in listed_origins(env):
        raise EndpointKeyError(
            f"{url} is plain http to {host}, not a loopback address: the key in {key_env} "
            f"would cross the network in clear text. Fix: use an https URL, or, if {url} is "
            f"this platform on a private network, list it in {PLATFORM_URL_ENV}"
        )
    return key or None

"""Secrets the platform refuses to start with: a value still holding the ``REPLACE_ME``
placeholder of ``k8s/secrets.example.yaml``, and an API key or Ray token shorter than 32
characters (the platform makes 64 hex characters: ``secrets.token_hex(32)``).

Checked where the platform starts: the Serve app's builder (``serve/app.py``), every job's
command line (``cluster.config.cli_config``) and ``python -m cluster up``::

    problems = startup_secret_problems(os.environ)   # [] when every secret set is usable
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

PLACEHOLDER = "REPLACE_ME"
MIN_CHARS = 32
API_KEY_ENV = "ONPREM_API_KEY"
# Guessable if short: an API key and the Ray token. The others are checked for the
# placeholder only (their length is the issuer's).
KEYS = ("RAY_AUTH_TOKEN",)
PLACEHOLDER_ONLY = (
    "ONPREM_LEDGER_URL", "HF_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "POSTGRES_PASSWORD",
)  # fmt: skip
FIX = "Fix: python -c 'import secrets; print(secrets.token_hex(32))' makes one"


def secret_problem(name: str, value: str | None, *, min_chars: int = MIN_CHARS) -> str | None:
    """Why ``value`` (of the variable or file ``name``) is not usable as a secret, or None.
    An empty value is not judged here: whether one is needed is the caller's decision."""
    if not value:
        return None
    if PLACEHOLDER in value:
        return (
            f"{name} still holds the placeholder {PLACEHOLDER} (k8s/secrets.example.yaml). "
            f"Fix: put the real value in the Secret or the environment"
        )
    if len(value) < min_chars:
        return f"{name} is {len(value)} characters; at least {min_chars} are needed. {FIX}"
    return None


def startup_secret_problems(env: Mapping[str, str], api_key_env: str = API_KEY_ENV) -> list[str]:
    """Every unusable secret among those set in ``env`` (and the Ray token file it names)."""
    problems = [secret_problem(name, env.get(name)) for name in (api_key_env, *KEYS)]
    problems += [secret_problem(name, env.get(name), min_chars=0) for name in PLACEHOLDER_ONLY]
    token_path = env.get("RAY_AUTH_TOKEN_PATH")
    if token_path:
        try:
            token = Path(token_path).expanduser().read_text().strip()
        except OSError:
            token = ""  # Ray itself says when it cannot read its token
        problems.append(secret_problem(f"the Ray token file {token_path}", token))
    return [p for p in problems if p]

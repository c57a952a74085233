"""Secrets come from the environment or from Prefect Secret blocks, never from OKR files."""

from __future__ import annotations

from pydantic import SecretStr


class MissingSecretError(Exception):
    pass


def resolve_secret(what: str, value: SecretStr | None, block: str | None) -> str:
    """The secret's value: from the named Prefect Secret block if given, else the variable."""
    if block:
        from prefect.blocks.system import Secret

        try:
            secret: Secret = Secret.load(block)  # type: ignore[assignment]
            return str(secret.get())
        except ValueError as exc:
            raise MissingSecretError(
                f"{what}: Prefect Secret block {block!r} not found ({exc})"
            ) from None
    if value is None or not value.get_secret_value():
        raise MissingSecretError(f"{what} is not set")
    return value.get_secret_value()

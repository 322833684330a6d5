"""Redis clients built from ``RedisSettings``: credentials and TLS in one place, refusals as one clear error.

``connect`` (blocking) and ``connect_async`` (``redis.asyncio``) pass the URL with the user, password and
CA file of the settings (``RedisSettings.connection_url``) to redis-py and nowhere else. ``check`` pings
once and translates what redis-py raises: a refused user or password, or a failed TLS handshake, is
``AuthenticationFailed`` (fatal: retrying cannot help); an unreachable server is ``RedisUnavailable``.
Messages name the address and the user, never the password.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from stream_ner.errors import AuthenticationFailed, RedisUnavailable
from stream_ner.settings import RedisSettings

_TIMEOUTS = {"socket_timeout": 5, "socket_connect_timeout": 2}


def connect(settings: RedisSettings, **options: Any) -> Any:
    """A ``redis.Redis`` for the settings (5 s socket timeout, 2 s to connect, unless ``options`` say)."""
    import redis

    return redis.Redis.from_url(settings.connection_url(), **(_TIMEOUTS | options))


def connect_async(settings: RedisSettings, **options: Any) -> Any:
    """A ``redis.asyncio.Redis`` for the settings, with the timeouts of ``connect``."""
    import redis.asyncio as aioredis

    return aioredis.Redis.from_url(settings.connection_url(), **(_TIMEOUTS | options))


def address(settings: RedisSettings) -> str:
    """``scheme://host:port/db`` of the settings' URL, without credentials: safe to print."""
    parts = urlsplit(settings.url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def check(settings: RedisSettings) -> None:
    """PING once: ``AuthenticationFailed`` if Redis refuses the user or TLS, ``RedisUnavailable`` if down."""
    from redis.exceptions import AuthenticationError, ConnectionError, ResponseError, TimeoutError

    client = connect(settings)
    try:
        client.ping()
    except (AuthenticationError, ResponseError) as exc:
        raise refusal(settings, str(exc)) from None
    except (ConnectionError, TimeoutError) as exc:
        text = str(exc)
        if "SSL" in text or "certificate" in text:
            raise AuthenticationFailed(
                f"TLS with Redis at {address(settings)} failed: {text}; check STREAM_NER_REDIS__CA_FILE"
            ) from None
        if urlsplit(settings.url).scheme == "redis" and (
            "closed by server" in text or "reset by peer" in text
        ):
            raise AuthenticationFailed(
                f"Redis at {address(settings)} closed the connection at once, as a TLS port does to a "
                "plaintext client; use a rediss:// URL in STREAM_NER_REDIS__URL"
            ) from None
        raise RedisUnavailable(f"cannot reach Redis at {address(settings)}: {text}") from None
    finally:
        client.close()


def refusal(settings: RedisSettings, reason: str) -> AuthenticationFailed:
    """The error for a Redis reply refusing the connection's user (``WRONGPASS``, ``NOAUTH``, ``NOPERM``)."""
    user = settings.username or urlsplit(settings.url).username or "default"
    return AuthenticationFailed(
        f"Redis at {address(settings)} refused user {user!r}: {reason}; check STREAM_NER_REDIS__USERNAME "
        "and STREAM_NER_REDIS__PASSWORD"
    )

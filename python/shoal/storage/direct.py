"""The hot scripts (COMPLETE, START) sent straight on a pooled connection.

Every task costs one script call, and redis-py's general path costs about as much client time
as the loopback trip itself: argument encoding one value at a time (10 µs for COMPLETE's 21
arguments), the command wrapper, the retry wrapper, observability hooks. :class:`DirectScript`
encodes the EVALSHA in one pass, writes it on a connection taken from the client's own pool
and reads the reply: measured with ``benches/test_round_trips.py``'s graphs, about 20 µs less
per task (see docs/benchmarks.md).

It changes nothing else: a server that lost its scripts (restart, SCRIPT FLUSH) answers
NOSCRIPT and the call goes through redis-py's script object, which loads it; a connection
that fails goes back through redis-py's path too, with its retries and backoff (a script that
ran before its reply was lost runs again: every script is idempotent). Error replies (a full
server, a script error) raise redis-py's exceptions as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

Arg = bytes | str | int

#: Values above this go to the socket as their own buffer, not copied into the command.
_INLINE_UP_TO = 16 * 1024


def encode_command(args: Sequence[Arg]) -> list[bytes]:
    """``args`` as a RESP array: small parts joined, large values left as they are."""
    parts: list[bytes] = []
    small = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = b"%d" % a
        if len(a) > _INLINE_UP_TO:
            small.append(b"$%d\r\n" % len(a))
            parts += [b"".join(small), a]
            small = [b"\r\n"]
        else:
            small += (b"$%d\r\n" % len(a), a, b"\r\n")
    parts.append(b"".join(small))
    return parts


class DirectScript:
    """A registered script (redis-py's ``AsyncScript``) called by EVALSHA on a pooled
    connection; see the module docstring for what falls back to redis-py."""

    def __init__(self, client: Any, script: Any) -> None:
        self._pool = client.connection_pool
        #: redis-py's script object (for pipelines, and for what falls back).
        self.script = script

    async def __call__(self, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        command = encode_command(["EVALSHA", self.script.sha, len(keys), *keys, *args])
        conn = await self._pool.get_connection()
        try:
            await conn.send_packed_command(command, check_health=False)
            return await conn.read_response()
        except NoScriptError:
            pass  # loaded below, by redis-py
        except (RedisConnectionError, RedisTimeoutError, OSError):
            await conn.disconnect()
        except BaseException:
            await conn.disconnect()  # cancelled mid-reply: the connection is out of step
            raise
        finally:
            await self._pool.release(conn)
        return await self.script(keys=keys, args=args)

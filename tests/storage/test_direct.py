"""The hot scripts' direct path: the bytes it sends, and that a server which lost its scripts
or a connection that broke is handled as redis-py's own path handles them."""

from __future__ import annotations

import asyncio

import redis
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio.connection import Connection

from shoal.storage.direct import DirectScript, encode_command

args = st.lists(
    st.one_of(
        st.binary(max_size=64),
        st.binary(min_size=16 * 1024, max_size=20 * 1024),
        st.text(max_size=32),
        st.integers(-(2**63), 2**63 - 1),
    ),
    max_size=30,
)


@settings(max_examples=200)
@given(args)
def test_commands_are_the_bytes_redis_py_sends(values: list[bytes | str | int]) -> None:
    # (redis-py splits a command name with spaces in it: the name is always a plain word)
    expected = b"".join(Connection().pack_command("EVALSHA", *values))
    assert b"".join(encode_command(["EVALSHA", *values])) == expected


SCRIPT = "return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}"


def test_a_server_that_lost_the_script_or_a_broken_connection_still_answers(
    clean_redis: str,
) -> None:
    async def go() -> None:
        r = aioredis.Redis.from_url(clean_redis)
        call = DirectScript(r, r.register_script(SCRIPT))
        try:
            assert await call(["k"], [b"a"]) == [b"k", b"a", 1]  # NOSCRIPT: loaded, then run
            assert await call(["k"], [7]) == [b"k", b"7", 2]  # straight
            other = redis.Redis.from_url(clean_redis)
            other.script_flush()
            assert await call(["k"], ["x"]) == [b"k", b"x", 3]  # lost, loaded again
            other.client_kill_filter(_type="normal", skipme=True)  # breaks our connection
            other.close()
            assert await call(["k"], ["y"]) == [b"k", b"y", 4]  # through redis-py's retries
        finally:
            await r.aclose()

    asyncio.run(go())

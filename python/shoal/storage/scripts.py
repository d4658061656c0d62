"""The Lua scripts that make a run's state changes atomic on the server (one round trip each).

Both scripts refuse to touch a run whose ``meta`` hash is gone (cleaned up or expired): a
straggler worker must never re-create keys of a finished run, which would then live without a
TTL. Every key they name arrives in KEYS and carries the run's hash tag, so they also run on a
Redis Cluster.

``COMPLETE`` (see :meth:`shoal.storage.base.Storage.complete` for the semantics)::

    KEYS: out, pending, started, meta, events, inbox_1 .. inbox_k
    ARGV: task, output ('' = not sent), store (0/1), is_output (0/1), own worker (-1 = flexible),
          ttl_s, msgpack [[task, ndeps, worker or -1, inbox index or 0], ...],
          msgpack [field, value, ...] of the TASK_COMPLETED event, and of a TASK_STARTED event
          to append first (empty when the task was announced when it started)
    ->    {1, ready, invoke_workers, run_finished}  or {0} for a repeat, {-1} for a gone run

Lists travel as one msgpack argument each (unpacked by the server's ``cmsgpack``): a client
library encodes every argument separately, and a fan-out's thousand downstream tasks as four
thousand arguments cost more client time than the script itself.

The task's field in ``out`` is its done marker: '' when the output stayed on its worker, the
encoded value when it was stored. HSETNX on it makes a repeated completion a no-op and writes
outputs first-wins. A downstream task with one dependency is ready at once, with no counter.

``START`` (a task starts: announce it, fetch its inputs, one round trip)::

    KEYS: events, out, const
    ARGV: msgpack [field, value, ...] of the TASK_STARTED event, msgpack [upstream task ids],
          msgpack [constant hashes (hex)]
    ->    {outputs in order ('' or false when absent), constants in order}

``FAIL``::

    KEYS: meta, errors, events
    ARGV: task, error record blob, then the TASK_FAILED event's field/value pairs
    ->    1, or 0 when the run had already ended (completed, failed or gone)
"""

from __future__ import annotations

COMPLETE = """
if redis.call('EXISTS', KEYS[4]) == 0 then return {-1} end
local task = ARGV[1]
if redis.call('HSETNX', KEYS[1], task, '') == 0 then return {0} end
local own, ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local ready, invoke = {}, {}
local waits = false
for _, down in ipairs(cmsgpack.unpack(ARGV[7])) do
  local d, ndeps, w, inbox = down[1], down[2], down[3], down[4]
  local count = ndeps
  if ndeps > 1 then count = redis.call('HINCRBY', KEYS[2], d, 1) end
  if count < ndeps then
    waits = true
  elseif w >= 0 and w ~= own then
    local key = KEYS[5 + inbox]
    redis.call('RPUSH', key, d)
    redis.call('EXPIRE', key, ttl)
    if redis.call('SADD', KEYS[3], w) == 1 then invoke[#invoke + 1] = w end
  else
    ready[#ready + 1] = d
  end
end
if ARGV[2] ~= '' and (ARGV[3] == '1' or waits) then
  redis.call('HSET', KEYS[1], task, ARGV[2])
end
local started = cmsgpack.unpack(ARGV[9])
if #started > 0 then redis.call('XADD', KEYS[5], '*', unpack(started)) end
redis.call('XADD', KEYS[5], '*', 'type', 'TASK_COMPLETED', 'task', task,
  unpack(cmsgpack.unpack(ARGV[8])))
local finished = 0
if ARGV[4] == '1' and redis.call('HINCRBY', KEYS[4], 'outputs_left', -1) == 0 then
  redis.call('HSET', KEYS[4], 'ended', 'completed')
  redis.call('XADD', KEYS[5], '*', 'type', 'RUN_COMPLETED')
  finished = 1
end
return {1, ready, invoke, finished}
"""

START = """
local outs, consts = {}, {}
local event = cmsgpack.unpack(ARGV[1])
if #event > 0 then redis.call('XADD', KEYS[1], 'NOMKSTREAM', '*', unpack(event)) end
local ids = cmsgpack.unpack(ARGV[2])
if #ids > 0 then outs = redis.call('HMGET', KEYS[2], unpack(ids)) end
local hashes = cmsgpack.unpack(ARGV[3])
if #hashes > 0 then consts = redis.call('HMGET', KEYS[3], unpack(hashes)) end
return {outs, consts}
"""

FAIL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[1], 'ended', 'failed') == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local event = {}
for j = 3, #ARGV do event[#event + 1] = ARGV[j] end
redis.call('XADD', KEYS[3], '*', unpack(event))
redis.call('XADD', KEYS[3], '*', 'type', 'RUN_FAILED', 'task', ARGV[1])
return 1
"""

"""The Lua scripts that make a run's state changes atomic on the server (one round trip each).

The scripts refuse to touch a run whose ``meta`` (or ``leases``) key is gone (cleaned up or
expired): a straggler worker must never re-create keys of a finished run, which would then live
without a TTL. Every key they name arrives in KEYS and carries the run's hash tag, so they also
run on a Redis Cluster. Lease times come from the server's clock (TIME), so hosts need not agree.
:mod:`.state` is the same contract in Python (the memory store runs it); its docstring maps each
script and helper to its counterpart there.

``COMPLETE`` (see :meth:`shoal.storage.base.Storage.complete` for the semantics)::

    KEYS: out, pending, started, meta, events, leases, maps, const, crashes, inbox_1 .. inbox_k
    ARGV: task, output ('' = not sent), store (0/1), is_output (0/1), own worker (-1 = flexible),
          ttl_s, msgpack [[task, ndeps, worker or -1, inbox index or 0], ...],
          msgpack [field, value, ...] of the TASK_COMPLETED event, lease ttl (ms),
          msgpack [[map, is_output (0/1), [downstream as above], [event fields]], ...] (gathers),
          the next task's start ('' = none): msgpack [task, if_ready (0/1), [TASK_STARTED
          fields], [upstream ids], [constant hashes], [lease members], [[map, element 0]],
          rerun (0/1)]
    ->    {1, ready, invoke_workers, run_finished[, START's reply]}  or {0} for a repeat,
          {-1} for a gone run. The start runs after the completion, only when it was the first
          and, with if_ready, only when the task is among ``ready``: the worker's next task
          costs no round trip of its own.

A *gather* is the map an element belongs to (see :mod:`shoal.runtime.elements`): its counter
``g<map>`` in ``pending`` was set to the map's width at expansion; the element that takes it to
zero completes the map (done marker, its static downstream counted, TASK_COMPLETED).

``EXPAND`` (a map chain's root expands; :meth:`shoal.storage.base.Storage.expand`)::

    KEYS: as COMPLETE
    ARGV: root, width, msgpack [item blobs], item base id, element base id,
          msgpack [[map, is_output, [downstream], [event fields]], ...] (every map of the chain),
          own worker, ttl_s, lease ttl (ms), msgpack [field, value, ...] of MAP_EXPANDED
    ->    as COMPLETE; the root's elements (base .. base + width - 1) are ready

It drops the task's leases and leases every task it returns as ready: from the moment a task is
ready until it completes, some lease covers it (see :func:`shoal.storage.keys.leases`: queued
on its worker, handed to the platform, running), so work lost anywhere in between is noticed.

Lists travel as one msgpack argument each (unpacked by the server's ``cmsgpack``): a client
library encodes every argument separately, and a fan-out's thousand downstream tasks as four
thousand arguments cost more client time than the script itself.

The task's field in ``out`` is its done marker: '' when the output stayed on its worker, the
encoded value when it was stored. HSETNX on it makes a repeated completion a no-op and writes
outputs first-wins. A downstream task with one dependency is ready at once, with no counter.

``START`` (a task starts: announce it, lease it, fetch its inputs, one round trip)::

    KEYS: events, out, const, leases, maps, crashes, meta
    ARGV: msgpack [field, value, ...] of the TASK_STARTED event, msgpack [upstream task ids],
          msgpack [constant hashes (hex)], msgpack [lease members], lease ttl (ms),
          msgpack [[map, id of its element 0], ...], the task that starts ('' for a plain read),
          '1' when that task runs again although done (a recovery recomputing a lost output)
    ->    {outputs in order ('' or false when absent), constants in order,
           per map: its elements' outputs in order, or false when it has not expanded,
           the task's crash record (lines) or false, 0}; and nothing changes for a task start
           of a run that has ended or is gone ({false, false, false, false, 1}) or of a task
           done already ({..., 2}: a duplicate invocation's task is not run twice)

The members it takes replace what covered the work until then: ``r<task>`` replaces the task's
``t`` and ``ht`` leases, any other member ``m`` its hand-off ``hm``.

``RENEW`` (a worker still holds these leases; ``XX``: a dropped lease stays dropped)::

    KEYS: leases     ARGV: lease ttl (ms), members...

``HANDOFF`` (work given to the platform)::

    KEYS: leases     ARGV: lease ttl (ms), members...   (each becomes ``h`` + member)

``EXPIRED`` (the client's watchdog)::

    KEYS: meta, leases, crashes, events     ARGV: grace (ms)
    ->    expired lease members, each pushed ``grace`` into the future so that the recovery
          has time to start; or -1 when the run's state is gone from the server. An expired
          ``r<task>`` counts a crash (TASK_CRASHED) and becomes ``ht<task>``.

``CRASHED`` (a platform reports the death of the worker running a task)::

    KEYS: meta, leases, crashes, events
    ARGV: task, how, worker, requeue (0/1), lease ttl (ms)
    ->    crashes so far, 0 if not counted (not running), -1 if the run ended

``FAIL``::

    KEYS: meta, errors, events
    ARGV: task, error record blob, then the TASK_FAILED event's field/value pairs
    ->    1, or 0 when the run had already ended (completed, failed or gone); the errors hash
          it creates gets the TTL left to ``meta``
"""

from __future__ import annotations

# Lua's unpack() stops at a few thousand values: variadic calls go in chunks.
_CHUNKED = """
local function chunked(cmd, key, args, width, flag)
  local out = {}
  for i = 1, #args, 1000 * width do
    local part = {}
    if flag then part[1] = flag end
    for j = i, math.min(i + 1000 * width - 1, #args) do part[#part + 1] = args[j] end
    local r = redis.call(cmd, key, unpack(part))
    if type(r) == 'table' then for _, v in ipairs(r) do out[#out + 1] = v end end
  end
  return out
end
-- Leases: members scored by their expiry, lease_ms from now on the server's clock.
local function lease(key, members, lease_ms, flag)
  if #members == 0 then return end
  local now = redis.call('TIME')
  local expiry = now[1] * 1000 + math.floor(now[2] / 1000) + lease_ms
  local scored = {}
  for _, m in ipairs(members) do
    scored[#scored + 1] = expiry
    scored[#scored + 1] = m
  end
  chunked('ZADD', key, scored, 2, flag)
end
local function now_ms()
  local now = redis.call('TIME')
  return now[1] * 1000 + math.floor(now[2] / 1000)
end
-- A worker died while running `task`: one more line in its crash record, and TASK_CRASHED.
-- Returns how many times it crashed so far.
local function record_crash(crashes, events, task, how, worker)
  local all = redis.call('HGET', crashes, task)
  if all then all = all .. '\\n' .. how else all = how end
  redis.call('HSET', crashes, task, all)
  local n = 1
  for _ in string.gmatch(all, '\\n') do n = n + 1 end
  local event = {'type', 'TASK_CRASHED', 'task', task, 'how', how, 'crashes', n}
  if worker ~= '' then event[#event + 1] = 'worker'; event[#event + 1] = worker end
  redis.call('XADD', events, 'NOMKSTREAM', '*', unpack(event))
  return n
end
"""

# The run-state helpers COMPLETE and EXPAND share. KEYS: 1 out, 2 pending, 3 started, 4 meta,
# 5 events, 6 leases, 7 maps (widths), 8 const, 9 crashes, 10.. inboxes. A script sets `own`
# and `ttl` first.
_RUN_STATE = (
    _CHUNKED
    + """
local own, ttl = -1, 0
local ready, invoke, finished = {}, {}, 0
local function id(n) return string.format('%d', n) end
-- Counts down downstream tasks; routes the ready ones. True when one still waits for others.
local function count_down(list)
  local waits = false
  for _, down in ipairs(list) do
    local d, ndeps, w, inbox = down[1], down[2], down[3], down[4]
    local count = ndeps
    if ndeps > 1 then count = redis.call('HINCRBY', KEYS[2], id(d), 1) end
    if count < ndeps then
      waits = true
    elseif w >= 0 and w ~= own then
      local key = KEYS[9 + inbox]
      redis.call('RPUSH', key, id(d))
      redis.call('EXPIRE', key, ttl)
      if redis.call('SADD', KEYS[3], w) == 1 then invoke[#invoke + 1] = w end
    else
      ready[#ready + 1] = d
    end
  end
  return waits
end
local function output_done()
  -- A run that failed stays failed: its last output completing late changes nothing.
  if redis.call('HINCRBY', KEYS[4], 'outputs_left', -1) == 0
      and redis.call('HSETNX', KEYS[4], 'ended', 'completed') == 1 then
    redis.call('XADD', KEYS[5], '*', 'type', 'RUN_COMPLETED')
    finished = 1
  end
end
-- A map whose last element is done (or whose width is 0) completes: {map, is_output,
-- downstream, event fields}.
local function finish_map(g)
  local m = id(g[1])
  if redis.call('HSETNX', KEYS[1], m, '') == 0 then return end
  count_down(g[3])
  redis.call('XADD', KEYS[5], '*', 'type', 'TASK_COMPLETED', 'task', m,
    'width', redis.call('HGET', KEYS[7], m) or '0', unpack(g[4]))
  if g[2] == 1 then output_done() end
end
-- How a state change starts: the run must still exist ({-1} if not), the task's leases go,
-- and its marker field is set once ({0} for a repeat, which changes nothing).
local function claim(task, marker, value)
  if redis.call('EXISTS', KEYS[4]) == 0 then return {-1} end
  redis.call('ZREM', KEYS[6], 't' .. task, 'r' .. task, 'ht' .. task)
  if redis.call('HSETNX', marker, task, value) == 0 then return {0} end
end
-- How it ends: the tasks made ready are leased until a worker holds them, and the pinned
-- workers to invoke are leased as handed off until they start (the invoker may die first).
local function result(lease_ms)
  local members = {}
  for _, d in ipairs(ready) do members[#members + 1] = 't' .. id(d) end
  for _, w in ipairs(invoke) do members[#members + 1] = 'hw' .. id(w) end
  lease(KEYS[6], members, lease_ms)
  return {1, ready, invoke, finished}
end
"""
)

# A task start (see the module docstring): a function, so that COMPLETE can start the
# worker's next task in the same script. K: events, out, const, leases, maps, crashes, meta;
# `task` is '' for a plain read.
_START_TASK = """
local function start_task(K, event, ids, hashes, members, lease_ms, maplists, task, rerun)
  -- A task start of a run that has ended (or is gone) changes nothing: no task of it starts;
  -- nor does the start of a task done already (a duplicate invocation), unless it is rerun.
  if task ~= '' then
    if redis.call('EXISTS', K[7]) == 0 or redis.call('HEXISTS', K[7], 'ended') == 1 then
      return {false, false, false, false, 1}
    end
    if not rerun and (redis.call('HEXISTS', K[2], task) == 1
        or redis.call('HEXISTS', K[5], task) == 1) then
      return {false, false, false, false, 2}
    end
  end
  local outs, consts = {}, {}
  if #event > 0 then redis.call('XADD', K[1], 'NOMKSTREAM', '*', unpack(event)) end
  if redis.call('EXISTS', K[4]) == 1 then
    -- What the new leases replace: a running task's queued and hand-off leases, the hand-off
    -- of anything else taken.
    local replaced = {}
    for _, m in ipairs(members) do
      if string.sub(m, 1, 1) == 'r' then
        replaced[#replaced + 1] = 't' .. string.sub(m, 2)
        replaced[#replaced + 1] = 'ht' .. string.sub(m, 2)
      else
        replaced[#replaced + 1] = 'h' .. m
      end
    end
    if #replaced > 0 then chunked('ZREM', K[4], replaced, 1) end
    lease(K[4], members, lease_ms)
  end
  if #ids > 0 then outs = chunked('HMGET', K[2], ids, 1) end
  if #hashes > 0 then consts = chunked('HMGET', K[3], hashes, 1) end
  local lists = {}
  for _, l in ipairs(maplists) do
    local n = redis.call('HGET', K[5], string.format('%d', l[1]))
    if n then
      local ids = {}
      for i = 0, tonumber(n) - 1 do ids[#ids + 1] = string.format('%d', l[2] + i) end
      lists[#lists + 1] = chunked('HMGET', K[2], ids, 1)
    else
      lists[#lists + 1] = false
    end
  end
  local crashed = false
  if task ~= '' then crashed = redis.call('HGET', K[6], task) end
  return {outs, consts, lists, crashed, 0}
end
"""

# `#!lua` (no allow-oom): a full server refuses the whole script before it writes anything.
# Without it, Redis refuses only a script's first write that may grow memory, and once a
# script has written something (a lease dropped) the rest goes through, past maxmemory.
_CHECKED = "#!lua\n"

COMPLETE = (
    _CHECKED
    + _RUN_STATE
    + _START_TASK
    + """
local task = ARGV[1]
local refused = claim(task, KEYS[1], '')
if refused then return refused end
own, ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local waits = count_down(cmsgpack.unpack(ARGV[7]))
if ARGV[2] ~= '' and (ARGV[3] == '1' or waits) then
  redis.call('HSET', KEYS[1], task, ARGV[2])
end
local now = redis.call('TIME')
redis.call('XADD', KEYS[5], '*', 'type', 'TASK_COMPLETED', 'task', task,
  'stored_at', string.format('%d.%06d', now[1], now[2]), unpack(cmsgpack.unpack(ARGV[8])))
if ARGV[4] == '1' then output_done() end
for _, g in ipairs(cmsgpack.unpack(ARGV[10])) do
  if redis.call('HINCRBY', KEYS[2], 'g' .. id(g[1]), -1) == 0 then finish_map(g) end
end
local reply = result(tonumber(ARGV[9]))
if ARGV[11] ~= '' then
  -- The worker's next task starts here too: {task, if_ready, event, outputs, constants,
  -- lease members, map lists, rerun}.
  local s = cmsgpack.unpack(ARGV[11])
  local go = s[2] == 0
  if not go then
    for _, d in ipairs(ready) do if d == s[1] then go = true; break end end
  end
  if go then
    local K = {KEYS[5], KEYS[1], KEYS[8], KEYS[6], KEYS[7], KEYS[9], KEYS[4]}
    reply[5] = start_task(K, s[3], s[4], s[5], s[6], tonumber(ARGV[9]), s[7], id(s[1]),
      s[8] == 1)
  end
end
return reply
"""
)

EXPAND = (
    _CHECKED
    + _RUN_STATE
    + """
local root, width = ARGV[1], tonumber(ARGV[2])
local refused = claim(root, KEYS[7], width)
if refused then return refused end
own, ttl = tonumber(ARGV[7]), tonumber(ARGV[8])
local maps = cmsgpack.unpack(ARGV[6])
for _, g in ipairs(maps) do
  redis.call('HSET', KEYS[7], id(g[1]), width)
  if width > 0 then redis.call('HSET', KEYS[2], 'g' .. id(g[1]), width) end
end
local items, item_base, fields = cmsgpack.unpack(ARGV[3]), tonumber(ARGV[4]), {}
for i, blob in ipairs(items) do
  fields[#fields + 1] = id(item_base + i - 1)
  fields[#fields + 1] = blob
end
chunked('HSET', KEYS[1], fields, 2)
local base = tonumber(ARGV[5])
for i = 0, width - 1 do ready[#ready + 1] = base + i end
redis.call('XADD', KEYS[5], '*', 'type', 'MAP_EXPANDED', 'task', root, 'width', width,
  unpack(cmsgpack.unpack(ARGV[10])))
if width == 0 then
  for _, g in ipairs(maps) do finish_map(g) end
end
return result(tonumber(ARGV[9]))
"""
)

START = (
    _CHECKED
    + _CHUNKED
    + _START_TASK
    + """
return start_task(KEYS, cmsgpack.unpack(ARGV[1]), cmsgpack.unpack(ARGV[2]),
  cmsgpack.unpack(ARGV[3]), cmsgpack.unpack(ARGV[4]), tonumber(ARGV[5]),
  cmsgpack.unpack(ARGV[6]), ARGV[7], ARGV[8] == '1')
"""
)

RENEW = (
    _CHUNKED
    + """
local members = {}
for j = 2, #ARGV do members[#members + 1] = ARGV[j] end
lease(KEYS[1], members, tonumber(ARGV[1]), 'XX')
return 1
"""
)

# ``HANDOFF``: work given to the platform: each member's lease is replaced by a hand-off lease
# (``h`` + member) of a full lease lifetime, which the receiving worker's first START replaces.
# KEYS: leases; ARGV: lease ttl (ms), members... Nothing for a run whose leases are gone.
HANDOFF = (
    _CHUNKED
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local members, handed = {}, {}
for j = 2, #ARGV do
  members[#members + 1] = ARGV[j]
  handed[#handed + 1] = 'h' .. ARGV[j]
end
chunked('ZREM', KEYS[1], members, 1)
lease(KEYS[1], handed, tonumber(ARGV[1]))
return 1
"""
)

# ``PUT_SUBDAG``: stores a subDAG while the run lives. KEYS: sub; ARGV: name, blob. The hash
# exists from submission (placeholder + TTL) until cleanup: a straggler's write after cleanup
# must not re-create it without a TTL.
PUT_SUBDAG = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

# An expired running lease (``r<task>``) is a crash: it is counted, and becomes the hand-off of
# the recovery the watchdog is about to send.
EXPIRED = (
    _CHUNKED
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local ms = now_ms()
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ms, 'LIMIT', 0, 1000)
for _, m in ipairs(gone) do
  if string.sub(m, 1, 1) == 'r' then
    local task = string.sub(m, 2)
    record_crash(KEYS[3], KEYS[4], task, 'lost (its worker stopped renewing its lease)', '')
    redis.call('ZREM', KEYS[2], m)
    redis.call('ZADD', KEYS[2], ms + tonumber(ARGV[1]), 'ht' .. task)
  else
    redis.call('ZADD', KEYS[2], ms + tonumber(ARGV[1]), m)
  end
end
return gone
"""
)

# ``CRASHED``: a platform saw the worker running ``task`` die (the pool's report). Counted only
# while the task's running lease exists (not if it completed, or was counted as lost already);
# the lease becomes a hand-off (``requeue``: the platform runs the invocation again) or an
# expired queued lease (the watchdog recovers it at its next check).
# KEYS: meta, leases, crashes, events; ARGV: task, how, worker, requeue (0/1), lease ttl (ms)
# -> crashes so far; 0 when not counted; -1 when the run has ended (nothing to run again).
CRASHED = (
    _CHUNKED
    + """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'ended') == 1 then
  return -1
end
local task = ARGV[1]
if redis.call('ZSCORE', KEYS[2], 'r' .. task) == false then return 0 end
redis.call('ZREM', KEYS[2], 'r' .. task)
local n = record_crash(KEYS[3], KEYS[4], task, ARGV[2], ARGV[3])
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[2], now_ms() + tonumber(ARGV[5]), 'ht' .. task)
else
  redis.call('ZADD', KEYS[2], now_ms(), 't' .. task)
end
return n
"""
)

# ``CANCEL``: the run stops before it ended. KEYS: meta, events; ARGV: reason. -> 1, or 0 when
# it had ended already (completed, failed, cancelled) or is gone. From then on START refuses
# every task of it (``ended`` is set), whatever invocations of it still wait somewhere.
CANCEL = """#!lua flags=allow-oom
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[1], 'ended', 'cancelled') == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', 'type', 'RUN_CANCELLED', 'reason', ARGV[1])
return 1
"""

# `allow-oom`: a full server (maxmemory) refuses every other write, and the report of why the
# run cannot go on must still get through (it is small), or the client would wait forever.
FAIL = """#!lua flags=allow-oom
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[1], 'ended', 'failed') == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
-- The errors hash is new here: it lives as long as the rest of the run.
local ttl = redis.call('TTL', KEYS[1])
if ttl > 0 then redis.call('EXPIRE', KEYS[2], ttl) end
local event = {}
for j = 3, #ARGV do event[#event + 1] = ARGV[j] end
redis.call('XADD', KEYS[3], '*', unpack(event))
redis.call('XADD', KEYS[3], '*', 'type', 'RUN_FAILED', 'task', ARGV[1])
return 1
"""

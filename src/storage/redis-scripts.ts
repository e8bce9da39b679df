/**
 * How RedisStorage lays its data out in Redis, and the Lua scripts that make its read-modify-writes
 * atomic. Kept apart from the client code so the layout can be read (and reviewed) in one place.
 *
 * Layout (docs/storage.md):
 * - key: `<keyPrefix><namespace>:<key>`.
 * - a value: a Redis string `<expiresAt>|<JSON>`, where `expiresAt` is epoch milliseconds from the
 *   gateway's clock, or empty for "never".
 * - a set: a Redis hash with field `x` = `<expiresAt>` (same form) and one field `m:<member>` per member.
 *
 * Why the expiry is stored in the value as well as set natively: the gateway judges expiry with its own
 * injectable clock (src/core/clock.ts), exactly as the memory and SQLite backends do, so every backend
 * agrees on "now" and tests can move time instead of sleeping. Redis's own TTL is still set, as the
 * entry's remaining lifetime (PX / PEXPIRE, relative, so it does not depend on Redis's clock agreeing
 * with the gateway's): it lets Redis reclaim the space by itself. With the system clock the two
 * expiries coincide; the one in the value decides what readers see.
 *
 * Every script gets the gateway's "now" as ARGV[1] and touches only the keys it is given, so it is
 * atomic (Redis runs one script at a time) and safe to replay.
 */

/** Separates the expiry from the JSON in a stored value. Never part of a decimal number. */
export const ENVELOPE_SEPARATOR = '|';

/** The hash field holding a set's expiry, and the prefix of its member fields. */
export const SET_EXPIRY_FIELD = 'x';
export const SET_MEMBER_PREFIX = 'm:';

/** Error replies the scripts raise on purpose (the first word of the reply is the code). */
export const NOT_A_COUNTER = 'NOT_A_COUNTER';
export const CORRUPT = 'STORAGE_CORRUPT';

export function encodeEnvelope(expiresAt: number | null, json: string): string {
  return `${expiresAt ?? ''}${ENVELOPE_SEPARATOR}${json}`;
}

/** The expiry (null = never) and the JSON text of a stored value; undefined when it is not one. */
export function decodeEnvelope(text: string): { expiresAt: number | null; json: string } | undefined {
  const separator = text.indexOf(ENVELOPE_SEPARATOR);
  if (separator < 0) return undefined;
  const expiry = text.slice(0, separator);
  const expiresAt = expiry === '' ? null : Number(expiry);
  if (expiresAt !== null && !Number.isSafeInteger(expiresAt)) return undefined;
  return { expiresAt, json: text.slice(separator + 1) };
}

/**
 * Helpers every script starts with. `live` mirrors isLive() in values.ts: an entry is live while its
 * expiry is empty (never) or strictly after now. `native` gives a key its Redis TTL from a remaining
 * lifetime in milliseconds ('' = none).
 */
const PRELUDE = `
local now = tonumber(ARGV[1])
local function live(expiry)
  return expiry == '' or tonumber(expiry) > now
end
local function split(value)
  local sep = string.find(value, '${ENVELOPE_SEPARATOR}', 1, true)
  if not sep then return nil, nil end
  return string.sub(value, 1, sep - 1), string.sub(value, sep + 1)
end
local function corrupt(key)
  return redis.error_reply('${CORRUPT} ' .. key .. ' does not hold a gateway value')
end
`;

/**
 * Changes the expiry of a live value or set. ARGV: now, new expiresAt ('' = never), remaining ms
 * ('' = never). Returns 1 when there was a live entry, 0 otherwise (an expired one is not revived).
 */
export const EXPIRE_SCRIPT = `${PRELUDE}
local key = KEYS[1]
local kind = redis.call('TYPE', key).ok
if kind == 'string' then
  local expiry, json = split(redis.call('GET', key))
  if expiry == nil then return corrupt(key) end
  if not live(expiry) then return 0 end
  if ARGV[3] == '' then
    redis.call('SET', key, ARGV[2] .. '${ENVELOPE_SEPARATOR}' .. json)
  elseif tonumber(ARGV[3]) <= 0 then
    redis.call('DEL', key)
  else
    redis.call('SET', key, ARGV[2] .. '${ENVELOPE_SEPARATOR}' .. json, 'PX', ARGV[3])
  end
  return 1
elseif kind == 'hash' then
  local expiry = redis.call('HGET', key, '${SET_EXPIRY_FIELD}')
  if not expiry then return corrupt(key) end
  if not live(expiry) then return 0 end
  if ARGV[3] ~= '' and tonumber(ARGV[3]) <= 0 then
    redis.call('DEL', key)
    return 1
  end
  redis.call('HSET', key, '${SET_EXPIRY_FIELD}', ARGV[2])
  if ARGV[3] == '' then redis.call('PERSIST', key) else redis.call('PEXPIRE', key, ARGV[3]) end
  return 1
end
return 0
`;

/**
 * Fixed-window counter. ARGV: now, expiresAt of a new window, its remaining ms. A live counter keeps
 * its expiry (and its Redis TTL: KEEPTTL); a missing or expired one restarts at 1 with a new window.
 */
export const INCREMENT_SCRIPT = `${PRELUDE}
local key = KEYS[1]
local value = redis.call('GET', key)
if value then
  local expiry, json = split(value)
  if expiry == nil then return corrupt(key) end
  if live(expiry) then
    if not string.match(json, '^%-?%d+$') then
      return redis.error_reply('${NOT_A_COUNTER} ' .. key .. ' is not a counter')
    end
    local count = tonumber(json) + 1
    redis.call('SET', key, expiry .. '${ENVELOPE_SEPARATOR}' .. string.format('%d', count), 'KEEPTTL')
    return count
  end
end
if tonumber(ARGV[3]) <= 0 then
  redis.call('DEL', key)
else
  redis.call('SET', key, ARGV[2] .. '${ENVELOPE_SEPARATOR}1', 'PX', ARGV[3])
end
return 1
`;

/**
 * Stores a value unless a live one is there (SET NX that also sees the gateway clock's expiry).
 * ARGV: now, the envelope to store, remaining ms ('' = never). Returns 1 when this call stored it.
 */
export const SET_IF_ABSENT_SCRIPT = `${PRELUDE}
local key = KEYS[1]
local value = redis.call('GET', key)
if value then
  local expiry = split(value)
  if expiry == nil then return corrupt(key) end
  if live(expiry) then return 0 end
end
if ARGV[3] == '' then
  redis.call('SET', key, ARGV[2])
elseif tonumber(ARGV[3]) <= 0 then
  redis.call('DEL', key)
else
  redis.call('SET', key, ARGV[2], 'PX', ARGV[3])
end
return 1
`;

/**
 * Adds a member to a set whose expiry only ever grows (values.ts extendedSetExpiry). ARGV: now, member,
 * the member's expiresAt ('' = never). An expired set is replaced, not revived.
 */
export const ADD_TO_SET_SCRIPT = `${PRELUDE}
local key = KEYS[1]
local current = redis.call('HGET', key, '${SET_EXPIRY_FIELD}')
if current and not live(current) then
  redis.call('DEL', key)
  current = false
end
local added = ARGV[3]
local expiry
if not current then
  expiry = added
elseif current == '' or added == '' then
  expiry = ''
else
  expiry = string.format('%d', math.max(tonumber(current), tonumber(added)))
end
if expiry ~= '' and tonumber(expiry) <= now then
  redis.call('DEL', key)
  return 0
end
redis.call('HSET', key, '${SET_MEMBER_PREFIX}' .. ARGV[2], '1', '${SET_EXPIRY_FIELD}', expiry)
if expiry == '' then
  redis.call('PERSIST', key)
else
  redis.call('PEXPIRE', key, string.format('%d', tonumber(expiry) - now))
end
return 1
`;

/**
 * Deletes the given keys whose gateway-clock expiry has passed, re-checking each one inside the
 * script so an entry rewritten since the SCAN saw it is kept. ARGV: now. Returns how many it removed.
 */
export const SWEEP_SCRIPT = `${PRELUDE}
local removed = 0
for _, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key).ok
  local expiry = nil
  if kind == 'string' then
    expiry = split(redis.call('GET', key))
  elseif kind == 'hash' then
    expiry = redis.call('HGET', key, '${SET_EXPIRY_FIELD}')
  end
  -- Only an expiry this gateway wrote (digits) is judged; anything else under the prefix is left alone.
  if type(expiry) == 'string' and string.match(expiry, '^%d+$') and not live(expiry) then
    redis.call('DEL', key)
    removed = removed + 1
  end
end
return removed
`;

/** Escapes `*`, `?`, `[`, `]` and `\` so a prefix or namespace matches only itself in SCAN MATCH. */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (char) => `\\${char}`);
}

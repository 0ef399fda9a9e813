//! The Lua script that decides for every quota of a route in one round
//! trip, and how its answer is read.

use crate::clock::Nanos;
use crate::context::credits::NEVER;
use crate::context::gcra::QuotaState;
use crate::context::meter::Meter;
use crate::error::StoreError;
use crate::rate_limit::limit::MAX_STACK;
use crate::rate_limit::store::Decision;

/// What both scripts do with a key's credits, stored as `end:net` (the
/// refill period's end in Unix microseconds, 0 without a refill, and the
/// credits spent less topped up): `net` in the period ending at `e` (from
/// an earlier period, only a negative `net` is kept: the refill brings a
/// lower balance back up to the amount), and writing it back, without
/// expiry unless the refill would make the balance whole.
macro_rules! credits_lua {
    () => {
        r"
local function credits_net(key, e)
  local v = redis.call('GET', key)
  if not v then return 0 end
  local se, sn = string.match(v, '^(%d+):(-?%d+)$')
  se = tonumber(se) or 0
  sn = tonumber(sn) or 0
  if se >= e or sn < 0 then return sn end
  return 0
end
local function credits_set(key, e, net, now)
  local value = string.format('%.0f:%.0f', e, net)
  if e > 0 and net >= 0 then
    redis.call('SET', key, value, 'PX', math.max(1, math.ceil((e - now) / 1000)) + 1000)
  else
    redis.call('SET', key, value)
  end
end
"
    };
}

/// GCRA over every quota of a route, in one atomic step.
///
/// `KEYS`: one per quota. `ARGV[1]`: the request's cost; then, per quota,
/// its emission interval and tolerance in microseconds (decimal) — or, for
/// a calendar window, minus the window's end (Unix microseconds, from the
/// instance's clock) and its limit; for a key's credits, `c` and the refill
/// period's end (Unix microseconds, 0 without a refill), and the allowance. Bucket times come from Redis's own
/// clock (`TIME`), so instances with skewed clocks agree; a window's
/// boundary is the instances' (they agree as far as their clocks do). A
/// request one quota refuses consumes from none. Each admitted bucket's key
/// expires when the bucket would be full again, a window's a second after
/// its end.
///
/// Returns `{allowed, denied_by, retry_after_us, debt_us...}`, where a
/// bucket's debt is how far its TAT is ahead of now and a window's is its
/// count (after the request, when admitted) and a key's credits' is
/// `2^34 + net` (spent less topped up). A window's state is stored as
/// `end + count`, as the in-memory store keeps it; credits as `end:net`,
/// `net` falling to `min(net, 0)` when a later period begins (a refill),
/// kept without expiry unless the refill would make them whole.
pub(super) const SCRIPT: &str = concat!(
    credits_lua!(),
    r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local cost = tonumber(ARGV[1])
local tats = {}
local debts = {}
local denied_by = -1
local retry = 0
local ends = {}
local credits = {}
for i = 1, #KEYS do
  local arg = ARGV[2 * i]
  if string.byte(arg, 1) == 99 then
    local e = tonumber(string.sub(arg, 2))
    local allowance = tonumber(ARGV[2 * i + 1])
    local net = credits_net(KEYS[i], e)
    if net + cost > allowance and denied_by < 0 then
      denied_by = i - 1
      if e > 0 then retry = math.max(1, e - now) else retry = -1 end
    end
    credits[i] = e
    tats[i] = net + cost
    debts[i] = 17179869184 + net
  else
  local emission = tonumber(arg)
  local tolerance = tonumber(ARGV[2 * i + 1])
  if emission < 0 then
    local e = -emission
    local v = tonumber(redis.call('GET', KEYS[i])) or 0
    local count = 0
    if v >= e then count = v - e end
    if count + cost > tolerance and denied_by < 0 then
      denied_by = i - 1
      retry = math.max(1, e - now)
    end
    ends[i] = e
    tats[i] = e + count + cost
    debts[i] = count
  else
    local tat = tonumber(redis.call('GET', KEYS[i])) or now
    if tat < now then tat = now end
    local new_tat = tat + emission * cost
    local allowed_at = new_tat - tolerance
    if allowed_at > now and denied_by < 0 then
      denied_by = i - 1
      retry = allowed_at - now
    end
    tats[i] = new_tat
    debts[i] = tat - now
  end
  end
end
if denied_by >= 0 then
  local out = {0, denied_by, math.ceil(retry)}
  for i = 1, #KEYS do out[3 + i] = math.ceil(debts[i]) end
  return out
end
local out = {1, 0, 0}
for i = 1, #KEYS do
  if credits[i] then
    local e = credits[i]
    local net = tats[i]
    credits_set(KEYS[i], e, net, now)
    out[3 + i] = 17179869184 + net
  elseif ends[i] then
    local ttl = math.max(1, math.ceil((ends[i] - now) / 1000)) + 1000
    redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', ttl)
    out[3 + i] = tats[i] - ends[i]
  else
    local debt = tats[i] - now
    redis.call('SET', KEYS[i], string.format('%.3f', tats[i]), 'PX', math.max(1, math.ceil(debt / 1000)))
    out[3 + i] = math.ceil(debt)
  end
end
return out
"
);

/// Takes what an instance admitted on its own from each quota's bucket, in
/// one atomic step ([`Mode::Approximate`](super::Mode::Approximate)), or
/// what a response settled: the tokens are already spent, so nothing is
/// refused (a bucket may go into debt); negative tokens are given back,
/// never past full.
///
/// `KEYS`: one per quota. `ARGV[1]`: the tokens spent; then, per quota, its
/// arguments as [`SCRIPT`] takes them. The state is stored as the exact
/// script stores it. Returns each bucket's debt (how far its TAT is ahead
/// of now) in microseconds, or each window's count: the fleet's whole
/// consumption in it.
pub(super) const CONSUME: &str = concat!(
    credits_lua!(),
    r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local spent = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS do
  local arg = ARGV[2 * i]
  if string.byte(arg, 1) == 99 then
    local e = tonumber(string.sub(arg, 2))
    local net = credits_net(KEYS[i], e)
    net = math.max(-17179869183, math.min(17179869183, net + spent))
    credits_set(KEYS[i], e, net, now)
    out[i] = 17179869184 + net
  else
  local emission = tonumber(arg)
  if emission < 0 then
    local e = -emission
    local v = tonumber(redis.call('GET', KEYS[i])) or 0
    local count = spent
    if v >= e then count = v - e + spent end
    if count < 0 then count = 0 end
    local ttl = math.max(1, math.ceil((e - now) / 1000)) + 1000
    redis.call('SET', KEYS[i], string.format('%.0f', e + count), 'PX', ttl)
    out[i] = count
  else
    local tat = tonumber(redis.call('GET', KEYS[i])) or now
    if tat < now then tat = now end
    tat = tat + emission * spent
    if tat < now then tat = now end
    local debt = tat - now
    redis.call('SET', KEYS[i], string.format('%.3f', tat), 'PX', math.max(1, math.ceil(debt / 1000)))
    out[i] = math.ceil(debt)
  end
  end
end
return out
"
);

/// Reads the script's answer into a decision and each quota's report (a
/// bucket's debt in nanoseconds, a window's count), `now` and `epoch` being
/// the store's clock.
pub(super) fn read_reply(
    reply: &[i64],
    quotas: &[Meter],
    now: Nanos,
    epoch: u64,
) -> Result<(Decision, [Nanos; MAX_STACK]), StoreError> {
    let [allowed, denied_by, retry_us, debts_us @ ..] = reply else {
        return Err(StoreError::new("the Redis script answered a short reply"));
    };
    if debts_us.len() != quotas.len() {
        return Err(StoreError::new(
            "the Redis script answered for other quotas",
        ));
    }
    let mut debts = [0; MAX_STACK];
    let mut states = [QuotaState::default(); MAX_STACK];
    for (index, (quota, debt)) in quotas.iter().zip(debts_us).enumerate() {
        debts[index] = reported(quota, *debt);
        states[index] = quota.reported(debts[index], 0, now, epoch);
    }
    let states = &states[..quotas.len()];
    let decision = if *allowed == 1 {
        Decision::allowed(states)
    } else {
        let denied_by = usize::try_from(*denied_by).unwrap_or(0);
        // A bucket's wait is Redis's (its clock); a boundary's is the
        // instance's, as the boundary is. A key's credits with no refill:
        // no time would do.
        let retry = match quotas.get(denied_by) {
            _ if *retry_us < 0 => NEVER,
            Some(Meter::Window(_) | Meter::Credits(_)) => states
                .get(denied_by)
                .map_or(1, |state| state.reset_after.max(1)),
            _ => nanos(*retry_us).max(1),
        };
        Decision::denied(retry, denied_by, states)
    };
    Ok((decision, debts))
}

/// What a script reports for one quota, as [`Meter::holding`] reads it: a
/// bucket's debt in nanoseconds (the script answers microseconds), a
/// window's count.
pub(super) fn reported(meter: &Meter, reply: i64) -> u64 {
    match meter {
        Meter::Bucket(_) => nanos(reply),
        Meter::Window(_) | Meter::Credits(_) => u64::try_from(reply).unwrap_or(0),
    }
}

/// Microseconds from a script, in nanoseconds (negative: none).
fn nanos(micros: i64) -> u64 {
    u64::try_from(micros).unwrap_or(0).saturating_mul(1_000)
}

/// Microseconds, as the script reads them.
pub(super) fn micros(nanos: Nanos) -> String {
    format!("{}.{:03}", nanos / 1_000, nanos % 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_keep_fractions() {
        assert_eq!(micros(20_000_000), "20000.000");
        assert_eq!(micros(1_500), "1.500");
        assert_eq!(micros(7), "0.007");
    }
}

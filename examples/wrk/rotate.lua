-- wrk's script for the demo API behind the gate: by default every request
-- is `POST /v1/track` with a body of `{}` and the next key of a file of
-- keys (one a line, as `loadtest --serve gated --keys-file FILE` writes
-- them), each wrk thread starting at its own place in the file. The bare
-- server gets the same requests, keys and all.
--
--   wrk -t1 -c32 -d5s -s examples/wrk/rotate.lua http://127.0.0.1:8081 -- /tmp/tollgate-keys.txt
--
-- For the refusals of examples/wrk/refusals.sh, the environment changes
-- the request: TOLLGATE_METHOD and TOLLGATE_PATH (default POST and
-- /v1/track), TOLLGATE_BODY_BYTES (a body of that many bytes instead of
-- `{}`), TOLLGATE_NO_KEY=1 (no Authorization header, and no file of keys).
--
-- examples/wrk/run.sh starts the servers and pins them apart from wrk;
-- the README's Performance section gives the commands one by one.

local keys = {}
local next_key = 0
local thread_count = 0
local method = os.getenv("TOLLGATE_METHOD") or "POST"
local path = os.getenv("TOLLGATE_PATH") or "/v1/track"
local body_bytes = tonumber(os.getenv("TOLLGATE_BODY_BYTES") or "")
local body = body_bytes and string.rep("x", body_bytes) or "{}"
local no_key = os.getenv("TOLLGATE_NO_KEY") == "1"

function setup(thread)
    thread:set("offset", thread_count)
    thread_count = thread_count + 1
end

function init(args)
    if no_key then
        return
    end
    local file = args[1] or os.getenv("TOLLGATE_KEYS") or "/tmp/tollgate-keys.txt"
    for line in io.lines(file) do
        if #line > 0 then
            keys[#keys + 1] = line
        end
    end
    assert(#keys > 0, "no keys in " .. file)
    next_key = ((offset or 0) * 7919) % #keys
end

function request()
    local headers = { ["Content-Type"] = "application/json" }
    if not no_key then
        next_key = next_key % #keys + 1
        headers["Authorization"] = "Bearer " .. keys[next_key]
    end
    return wrk.format(method, path, headers, body)
end

-- wrk's script for the demo API behind the gate: every request is
-- `POST /v1/track` with a body of `{}` and the next key of a file of keys
-- (one a line, as `loadtest --serve gated --keys-file FILE` writes them),
-- each wrk thread starting at its own place in the file. The bare server
-- gets the same requests, keys and all.
--
--   wrk -t1 -c32 -d5s -s examples/wrk/rotate.lua http://127.0.0.1:8081 -- /tmp/tollgate-keys.txt
--
-- examples/wrk/run.sh starts both servers and pins them apart from wrk;
-- the README's Performance section gives the commands one by one.

local keys = {}
local next_key = 0
local thread_count = 0

function setup(thread)
    thread:set("offset", thread_count)
    thread_count = thread_count + 1
end

function init(args)
    local path = args[1] or os.getenv("TOLLGATE_KEYS") or "/tmp/tollgate-keys.txt"
    for line in io.lines(path) do
        if #line > 0 then
            keys[#keys + 1] = line
        end
    end
    assert(#keys > 0, "no keys in " .. path)
    next_key = ((offset or 0) * 7919) % #keys
end

function request()
    next_key = next_key % #keys + 1
    return wrk.format("POST", "/v1/track", {
        ["Authorization"] = "Bearer " .. keys[next_key],
        ["Content-Type"] = "application/json",
    }, "{}")
end

-- GET the URL given to wrk, with the bench key and, for the 304 figure, the ETag to match.
-- The baselines run the same script (without a key) so every figure pays the same Lua cost.
local status = require("status")

local key = os.getenv("BENCH_KEY")
local etag = os.getenv("BENCH_ETAG")
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
if etag and etag ~= "" then
  wrk.headers["If-None-Match"] = etag
end

setup = status.setup
init = status.init
done = status.done

function response(code, headers, body)
  status.count(code)
end

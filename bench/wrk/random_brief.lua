-- GET the brief of a customer picked at random from BENCH_IDS (a file, one customer id a
-- line), so the figure reflects a store with many customers rather than one hot key.
local status = require("status")

local key = os.getenv("BENCH_KEY")
local file = os.getenv("BENCH_IDS")
local ids = {}

wrk.headers["Authorization"] = "Bearer " .. key

setup = status.setup
done = status.done

function init(args)
  status.init()
  for line in io.lines(file) do
    ids[#ids + 1] = line
  end
  math.randomseed(os.time() + id)
end

function request()
  return wrk.format("GET", "/v1/customers/" .. ids[math.random(#ids)] .. "/context")
end

function response(code, headers, body)
  status.count(code)
end

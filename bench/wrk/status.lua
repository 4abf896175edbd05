-- Shared by every bench script: wrk itself only counts statuses >= 400 as errors, so a 200
-- where a 304 was expected (or a stray redirect) would go unnoticed. Each thread counts the
-- statuses it saw; done() prints them as "status <code> <count>" lines for bench/wrk.py.
local M = {}
local threads = {}

function M.setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function M.init()
  statuses = {}
end

function M.count(status)
  statuses[status] = (statuses[status] or 0) + 1
end

function M.done()
  local total = {}
  for _, thread in ipairs(threads) do
    for code, n in pairs(thread:get("statuses") or {}) do
      total[code] = (total[code] or 0) + n
    end
  end
  for code, n in pairs(total) do
    io.write(string.format("status %d %d\n", code, n))
  end
end

return M

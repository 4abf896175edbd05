-- POST one turn per request to one conversation of one customer, identity in the body, the
-- way a chatbot posts as the conversation goes. Turn ids are unique per run, thread and
-- request (BENCH_RUN + thread id + counter), so no request is answered as a duplicate.
local status = require("status")

local key = os.getenv("BENCH_KEY")
local conversation = os.getenv("BENCH_CONVERSATION")
local visitor = os.getenv("BENCH_VISITOR")
local run = os.getenv("BENCH_RUN") or "run"

-- Plain ASCII without quotes or backslashes, so they go into the JSON body as they are.
local texts = {
  "I was charged twice for my last order",
  "Which order do you mean?",
  "Order A-1001, the one from Tuesday",
  "I can see two payments of 49.90 on that order",
  "Can I get the second one refunded please",
  "I will ask a colleague to look at the refund",
  "How long will that take",
  "Usually three to five working days",
}

wrk.method = "POST"
wrk.path = "/v1/conversations/" .. conversation .. "/turns"
wrk.headers["Authorization"] = "Bearer " .. key
wrk.headers["Content-Type"] = "application/json"

local head = '{"customer":{"identities":[{"kind":"chat","value":"' .. visitor .. '"}]},'
  .. '"channel":"chat","source":"bench-bot","turns":[{"id":"'
local counter = 0
local prefix

setup = status.setup
done = status.done

function init(args)
  status.init()
  prefix = run .. "-" .. id .. "-"
end

function request()
  counter = counter + 1
  local body = head .. prefix .. counter .. '","role":"'
    .. (counter % 2 == 1 and "customer" or "bot") .. '","text":"'
    .. texts[counter % #texts + 1] .. '","ts":"' .. os.date("!%Y-%m-%dT%H:%M:%SZ") .. '"}]}'
  return wrk.format(nil, nil, nil, body)
end

function response(code, headers, body)
  status.count(code)
end

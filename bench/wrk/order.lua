-- Order placement: POST /v1/orders with BENCH_LINES lines of quantity 1 and the success card.
-- Line i takes a sku from the i-th of BENCH_LINES equal slices of [0, BENCH_SKUS), as the pgbench
-- script does; with BENCH_HOT_SKU set, every order has one line on that sku (flash sale).
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local skus = tonumber(os.getenv("BENCH_SKUS") or "1000")
local lines = tonumber(os.getenv("BENCH_LINES") or "1")
local hot = os.getenv("BENCH_HOT_SKU")
if hot == "" then hot = nil end
local slice = math.floor(skus / lines)
local card = '"payment":{"card":{"number":"4242424242424242","exp_month":12,"exp_year":2030,"cvc":"123"}}'

wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "")
wrk.headers["Content-Type"] = "application/json"

request = function()
  local items = {}
  if hot then
    items[1] = '{"sku":"' .. hot .. '","quantity":1}'
  else
    for i = 1, lines do
      local n = (i - 1) * slice + math.random(0, slice - 1)
      items[i] = '{"sku":"sku-' .. n .. '","quantity":1}'
    end
  end
  local body = '{"items":[' .. table.concat(items, ",") .. '],' .. card .. '}'
  return wrk.format("POST", "/v1/orders", nil, body)
end

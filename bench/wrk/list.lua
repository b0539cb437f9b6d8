-- A customer's order list: GET /v1/orders?limit=BENCH_LIMIT (default 100), bearer BENCH_TOKEN.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local limit = os.getenv("BENCH_LIMIT") or "100"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "")

request = function()
  return wrk.format("GET", "/v1/orders?limit=" .. limit)
end

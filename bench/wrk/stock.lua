-- Stock check: GET /v1/inventory/sku-N, N uniform in [0, BENCH_SKUS), bearer BENCH_TOKEN.
-- The nginx ceiling gets the same requests (it answers every path with one fixed body).
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local skus = tonumber(os.getenv("BENCH_SKUS") or "1000")
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "")

request = function()
  return wrk.format("GET", "/v1/inventory/sku-" .. math.random(0, skus - 1))
end

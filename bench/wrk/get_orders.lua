-- Order reads: GET /v1/orders/ID, ID uniform over the lines of BENCH_IDS_FILE, bearer BENCH_TOKEN.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local ids = {}
for line in io.lines(os.getenv("BENCH_IDS_FILE")) do ids[#ids + 1] = line end
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "")

request = function()
  return wrk.format("GET", "/v1/orders/" .. ids[math.random(1, #ids)])
end

-- wrk script: POST /member/offer cycling through the valid rows of a CSV (path in $BENCH_CSV).
-- Columns are looked up by header name; rows that would be rejected (422) are left out so that
-- every request exercises the whole pipeline.
local bodies = {}
local counter = 0

local function split(line)
  local out = {}
  for field in (line .. ","):gmatch("([^,]*),") do out[#out + 1] = field end
  return out
end

local path = os.getenv("BENCH_CSV") or "member_data.csv"
local file = assert(io.open(path, "r"))
local header = split(file:read("*l"):gsub("^\239\187\191", ""):gsub("\r$", ""))
local col = {}
for i, name in ipairs(header) do col[name:lower()] = i end
for line in file:lines() do
  local f = split(line:gsub("\r$", ""))
  local id, ts, kind = f[col["memberid"]], f[col["lasttransactionutcts"]], f[col["lasttransactiontype"]]
  local points, revenue = tonumber(f[col["lasttransactionpointsbought"]]), tonumber(f[col["lasttransactionrevenueusd"]])
  local k = kind and kind:upper()
  if #f == #header and id and id:match("^[%w_-]+$") and ts and ts:match("^%d%d%d%d%-%d%d%-%d%d")
     and (k == "BUY" or k == "GIFT" or k == "REDEEM") and points and revenue and revenue >= 0 then
    bodies[#bodies + 1] = string.format(
      '{"memberId":"%s","lastTransactionUtcTs":"%s","lastTransactionType":"%s",' ..
      '"lastTransactionPointsBought":%s,"lastTransactionRevenueUsd":%s}', id, ts, kind, points, revenue)
  end
end
file:close()

wrk.method = "POST"
wrk.path = "/member/offer"
wrk.headers["Content-Type"] = "application/json"

-- Each wrk thread starts at its own offset: in lockstep they would send the same row (same
-- member) at the same instant, which measures per-member sequencing rather than throughput.
local threads = 0
function setup(thread)
  thread:set("offset", threads)
  threads = threads + 1
end
function init(args)
  counter = math.floor((tonumber(offset) or 0) * #bodies / 2)
end

request = function()
  counter = counter % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[counter])
end

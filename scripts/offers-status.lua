-- offers.lua, plus a count of the answers by status printed at the end ("status 200 N").
dofile((os.getenv("OFFERS_LUA") or "scripts/offers.lua"))
local base_setup, base_init = setup, init
local all = {}
function setup(thread) base_setup(thread); table.insert(all, thread) end
function init(args) base_init(args); statuses = {} end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(all) do
    for k, v in pairs(t:get("statuses")) do total[k] = (total[k] or 0) + v end
  end
  for k, v in pairs(total) do io.write(string.format("status %d %d\n", k, v)) end
end

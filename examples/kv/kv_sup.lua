--- kv_sup — the supervision tree of the key-value service:
--
--     kv_sup (one_for_one)
--     ├── kv_store                 worker: the data
--     └── kv_cache_sup (one_for_one, a supervisor)
--         ├── cache_a              worker: kv_cache
--         └── cache_b              worker: kv_cache
--
-- A crashed cache is restarted by kv_cache_sup; if the caches crash too often,
-- kv_cache_sup gives up and kv_sup restarts that whole subtree; the store is untouched.
local supervisor = require "supervisor"

local M = {}

function M.start_link()
  return supervisor.start_link({
    "kv_store",
    {id = "kv_cache_sup", type = "supervisor", start = {"kv_sup", "start_caches"}},
  }, {strategy = "one_for_one", name = "kv_sup"})
end

function M.start_caches()
  return supervisor.start_link({{"kv_cache", "cache_a"}, {"kv_cache", "cache_b"}},
                               {strategy = "one_for_one", name = "kv_cache_sup",
                                intensity = 2, period = 5})
end

return M

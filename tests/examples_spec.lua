-- examples_spec.lua — smoke tests: the examples run to the end and tell the story they
-- promise. (They are demos, not the test suite; the behaviour specs test the details.)
local support = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "support.lua")

local function run(script)
  local out, err = os.tmpname(), os.tmpname()
  local cmd = string.format("cd /tmp && timeout 60 %s %s >%s 2>%s",
    support.shell_quote(support.moonbeam), support.shell_quote(support.dir .. "/../" .. script),
    support.shell_quote(out), support.shell_quote(err))
  local _, _, status = os.execute(cmd)
  local o, e = support.read_file(out), support.read_file(err)
  os.remove(out)
  os.remove(err)
  return status, o, e
end

describe("examples", function()
  it("demo.lua: the counter answers 4 clients, the keeper restarts the worker", function()
    local status, out, err = run("examples/demo.lua")
    assert.are.equal(0, status, err)
    assert.is_truthy(out:find("worker crashed %(worker 1 choked on job \"job%-3\"%); keeper started worker #2"), out)
    assert.is_truthy(out:find("4 clients made 1000 calls; counter is now 1006", 1, true), out)
    assert.is_truthy(err:find("=CRASH REPORT====", 1, true), err)
  end)

  it("kv/main.lua: a killed cache and a failing subtree are restarted, the data stays", function()
    local status, out, err = run("examples/kv/main.lua")
    assert.are.equal(0, status, err)
    assert.is_truthy(out:find("wrote 5 keys through cache_a; the store holds 5", 1, true), out)
    assert.is_truthy(out:find("kv_cache_sup restarted it as <0%.%d+%.%d+>; its cache is empty: " ..
                              "stats {hits = 0, misses = 0}"), out)
    assert.is_truthy(out:find("kv_cache_sup <0%.%d+%.%d+> gave up; kv_sup started a new one"), out)
    assert.is_truthy(out:find("the store kept its data: 5 keys, k5 = 25", 1, true), out)
    assert.is_truthy(out:find("stopped the tree; 1 process(es) left", 1, true), out)
    assert.is_truthy(err:find("errorContext: child_terminated", 1, true), err)
    assert.is_truthy(err:find('reason: "reached_max_restart_intensity"', 1, true), err)
  end)
end)

-- pretty_spec.lua — lualib/pretty.lua: readable text for values.
local pretty = require "pretty"
local format = pretty.format

describe("pretty.format", function()
  it("prints scalars as Lua source would, integers and floats apart", function()
    assert.are.equal("1", format(1))
    assert.are.equal("1.0", format(1.0))
    assert.are.equal("-0.0", format(-0.0))
    assert.are.equal("0.5", format(0.5))
    assert.are.equal("1e+100", format(1e100))
    assert.are.equal("inf", format(math.huge))
    assert.are.equal("-inf", format(-math.huge))
    assert.are.equal("nan", format(0/0))
    assert.are.equal("true", format(true))
    assert.are.equal("nil", format(nil))
    assert.are.equal('"a\\"b"', format('a"b'))
    assert.are.equal('"a\\nb"', format("a\nb"))
    assert.are.equal('"\\0"', format("\0"))
    assert.are.equal("<function>", format(print))
  end)

  it("prints pids and refs as the runtime does", function()
    local pid, ref = process.self(), process.make_ref()
    assert.are.equal(tostring(pid), format(pid))
    assert.are.equal(tostring(ref), format(ref))
    assert.is_truthy(format(pid):match("^<0%.%d+%.%d+>$"))
  end)

  it("lists the array part first, then other keys in a stable order", function()
    assert.are.equal('{1, 2, 3}', format({1, 2, 3}))
    assert.are.equal('{"shutdown", {reason = "boom"}}', format({"shutdown", {reason = "boom"}}))
    assert.are.equal('{1, [1.5] = true, [5] = 5, a = 1, b = 2, ["end"] = 4, ["not an id"] = 3}',
                     format({1, [5] = 5, [1.5] = true, b = 2, a = 1, ["not an id"] = 3,
                             ["end"] = 4}))
    assert.are.equal("{}", format({}))
    assert.are.equal("{[true] = 1}", format({[true] = 1}))
  end)

  it("marks a table met again inside itself, and prints shared tables twice", function()
    local t = {1}
    t.me = t
    assert.are.equal("{1, me = <cycle>}", format(t))
    local shared = {x = 1}
    assert.are.equal("{{x = 1}, {x = 1}}", format({shared, shared}))
  end)

  it("uses a table's __tostring", function()
    local e = setmetatable({}, {__tostring = function() return "E!" end})
    assert.are.equal("{E!}", format({e}))
  end)

  it("breaks long tables over lines with the given indent", function()
    local v = {items = {{id = 1, name = "item-1"}, {id = 2, name = "item-2"}}, kind = "payload"}
    assert.are.equal(
      '{items = {{id = 1, name = "item-1"}, {id = 2, name = "item-2"}}, kind = "payload"}',
      format(v))
    assert.are.equal(table.concat({
      '{',
      '  items = {',
      '    {id = 1, name = "item-1"},',
      '    {id = 2, name = "item-2"}',
      '  },',
      '  kind = "payload"',
      '}'}, "\n"), format(v, {width = 30}))
    assert.are.equal("{\n    kind = 1,\n    long_key_name = \"value\"\n  }",
                     format({kind = 1, long_key_name = "value"}, {width = 20, indent = "  "}))
  end)

  it("cuts very long output", function()
    local s = format(string.rep("x", 100), {max = 10})
    assert.are.equal('"xxxxxxxxx...', s)
  end)
end)

-- embed_spec.lua — `make install` and the embedding examples: what install puts where
-- (also staged under DESTDIR, and what uninstall takes away), and that the programs of
-- examples/embed, built against the installed copy with pkg-config alone, run as their
-- README says.
--
-- Every command runs from /tmp under `timeout 60`, without the make and pkg-config
-- variables an enclosing `make test` or shell may have set, so only what the spec passes
-- counts. The installs build the normal build (build/), whatever binary runs the spec.
local support = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "support.lua")
local q = support.shell_quote

local ROOT = support.physical_dir(support.dir .. "/..")
local EXAMPLE = ROOT .. "/examples/embed"
local CLEAN_ENV = "env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u DESTDIR -u PREFIX -u LIBDIR "
                  .. "-u PKG_CONFIG_PATH -u LD_LIBRARY_PATH"

--- Runs a shell command; returns status, stdout, stderr.
local function run(cmd)
  local out, err = os.tmpname(), os.tmpname()
  local _, _, status = os.execute(string.format("cd /tmp && %s timeout 60 sh -c %s >%s 2>%s",
    CLEAN_ENV, q(cmd), q(out), q(err)))
  local o, e = support.read_file(out), support.read_file(err)
  os.remove(out)
  os.remove(err)
  return status, o, e
end

--- Runs a command that must succeed; returns its stdout without the last newline.
local function must(cmd)
  local status, out, err = run(cmd)
  assert(status == 0, string.format("%s\nexited with %s:\n%s%s", cmd, status, out, err))
  return (out:gsub("\n$", ""))
end

local function make(args)
  return must("make -s -C " .. q(ROOT) .. " " .. args)
end

local function words(s)
  local t = {}
  for w in s:gmatch("%S+") do t[#t + 1] = w end
  return t
end

--- The files and symlinks under dir, as sorted paths relative to it.
local function tree(dir)
  local t = {}
  local list = must("cd " .. q(dir) .. " && find . ! -type d | LC_ALL=C sort")
  for line in list:gmatch("[^\n]+") do
    t[#t + 1] = line:sub(3)
  end
  return t
end

local function is_symlink(path)
  return (run("test -L " .. q(path))) == 0
end

local HEADER = support.read_file(ROOT .. "/interp/moonbeam.h")
local VERSION = HEADER:match('#define MB_VERSION "([^"]+)"')
local SONAME = "libmoonbeam.so." .. VERSION:match("^%d+")
local SOFILE = "libmoonbeam.so." .. VERSION

--- What install puts under PREFIX (LIBDIR as given, relative to PREFIX).
local function installed(libdir)
  libdir = libdir or "lib"
  local t = {"bin/moonbeam", "include/moonbeam.h", libdir .. "/libmoonbeam.a",
             libdir .. "/libmoonbeam.so", libdir .. "/" .. SONAME, libdir .. "/" .. SOFILE,
             libdir .. "/pkgconfig/moonbeam.pc"}
  table.sort(t)
  return t
end

local function pc_text(prefix, libdir)
  return table.concat({
    "prefix=" .. prefix, "libdir=${prefix}/" .. (libdir or "lib"),
    "includedir=${prefix}/include", "",
    "Name: moonbeam", "Description: Erlang-style processes for Lua 5.4",
    "Version: " .. VERSION, "Requires: lua5.4", "Libs: -L${libdir} -lmoonbeam",
    "Libs.private: -lm -ldl -pthread", "Cflags: -I${includedir}", "",
  }, "\n")
end

describe("make install PREFIX=dir and examples/embed built against it", function()
  local prefix, build
  local function with_pc(cmd)
    return "PKG_CONFIG_PATH=" .. q(prefix .. "/lib/pkgconfig") .. " " .. cmd
  end
  local function with_lib(cmd)
    return "LD_LIBRARY_PATH=" .. q(prefix .. "/lib") .. " " .. cmd
  end

  lazy_setup(function()
    prefix = must("mktemp -d /tmp/mb_embed_prefix.XXXXXX")
    build = must("mktemp -d /tmp/mb_embed_build.XXXXXX")
    make("install PREFIX=" .. q(prefix))
    must(with_pc("make -s -C " .. q(EXAMPLE) .. " O=" .. q(build)))
  end)

  lazy_teardown(function()
    if prefix then os.execute("rm -rf " .. q(prefix)) end
    if build then os.execute("rm -rf " .. q(build)) end
  end)

  it("installs the command, both libraries with the soname links, the header and the .pc",
     function()
    assert.are.same(installed(), tree(prefix))
    local lib = prefix .. "/lib/"
    assert.is_false(is_symlink(lib .. SOFILE))
    assert.are.equal(SOFILE, must("readlink " .. q(lib .. SONAME)))
    assert.are.equal(SONAME, must("readlink " .. q(lib .. "libmoonbeam.so")))
    local dynamic = must("readelf -d " .. q(lib .. SOFILE))
    assert.is_truthy(dynamic:find("Library soname: [" .. SONAME .. "]", 1, true), dynamic)
    assert.are.equal(pc_text(prefix), support.read_file(lib .. "pkgconfig/moonbeam.pc"))
    assert.are.equal("ok", must(q(prefix .. "/bin/moonbeam") .. [[ -e "print('ok')"]]))
  end)

  it("installs moonbeam.h as it is; it includes nothing of the project's", function()
    assert.are.equal(HEADER, support.read_file(prefix .. "/include/moonbeam.h"))
    local includes = {}
    for name in HEADER:gmatch("#%s*include%s*(%S+)") do includes[#includes + 1] = name end
    assert.are.same({"<stddef.h>", "<stdint.h>", "<lua.h>"}, includes)
  end)

  it("exports the mb_ functions from both libraries and nothing else", function()
    local _, declared = HEADER:gsub("MB_API [^\n]-(mb_[%w_]+)%(", "")
    for _, cmd in ipairs({"nm -D --defined-only " .. q(prefix .. "/lib/" .. SOFILE),
                          "nm -g --defined-only " .. q(prefix .. "/lib/libmoonbeam.a")}) do
      local names = words(must(cmd .. " | awk 'NF == 3 {print $3}'"))
      assert.are.equal(declared, #names)
      for _, name in ipairs(names) do assert.is_truthy(name:match("^mb_"), name) end
    end
  end)

  it("gives pkg-config the flags of moonbeam and, through Requires, of lua5.4", function()
    local lua_cflags = words(must("pkg-config --cflags lua5.4"))
    local lua_libs = words(must("pkg-config --libs lua5.4"))
    local expected = {"-I" .. prefix .. "/include"}
    table.move(lua_cflags, 1, #lua_cflags, #expected + 1, expected)
    table.move({"-L" .. prefix .. "/lib", "-lmoonbeam"}, 1, 2, #expected + 1, expected)
    table.move(lua_libs, 1, #lua_libs, #expected + 1, expected)
    assert.are.same(expected, words(must(with_pc("pkg-config --cflags --libs moonbeam"))))
    assert.are.equal(VERSION, must(with_pc("pkg-config --modversion moonbeam")))
    local static = " " .. must(with_pc("pkg-config --static --libs moonbeam")) .. " "
    for _, flag in ipairs({"-lmoonbeam", "-lm", "-ldl", "-pthread"}) do
      assert.is_truthy(static:find(" " .. flag .. " ", 1, true), static)
    end
  end)

  it("host: two threads get 200 right checksums from the supervised service, " ..
     "whose terminate runs at mb_stop", function()
    local ldd = must(with_lib("ldd " .. q(build .. "/host")))
    assert.is_truthy(ldd:find(prefix .. "/lib/" .. SONAME, 1, true), ldd)
    local status, out, err = run(with_lib(q(build .. "/host")))
    assert.are.equal(0, status, err)
    assert.are.equal(table.concat({
      "the checksum server is up; 2 threads send it 100 requests each",
      "thread 1: 100 of 100 replies right",
      "thread 2: 100 of 100 replies right",
      "stopped the runtime; the service reported:",
      '  checksum server: terminate("shutdown") after 200 requests',
      "every reply was right",
    }, "\n") .. "\n", out)
    assert.are.equal("", err)
  end)

  it("host: a service file that cannot be read is reported, and the exit status is 1",
     function()
    local status, out, err = run(with_lib(q(build .. "/host") .. " /nonexistent/service.lua"))
    assert.are.equal(1, status)
    assert.are.equal("host: /nonexistent/service.lua: cannot read the file\n", err)
    assert.are.equal("stopped the runtime\n0 of 200 replies right\n", out)
  end)

  it("host: a service that fails before it is ready is seen through the host's monitor",
     function()
    local dir = must("mktemp -d /tmp/mb_embed_fail.XXXXXX")
    support.write_file(dir .. "/service.lua", "error('no configuration', 0)\n")
    local status, out, err = run(with_lib(q(build .. "/host") .. " " .. q(dir .. "/service.lua")))
    os.execute("rm -rf " .. q(dir))
    assert.are.equal(1, status)
    assert.are.equal("host: no configuration\nstack traceback:\n\t[C]: in function 'error'\n"
                     .. "\t" .. dir .. "/service.lua:1: in main chunk\n"
                     .. "host: the service ended before it was ready\n", err)
    assert.are.equal("stopped the runtime\n0 of 200 replies right\n", out)
  end)

  it("hello: the smallest host prints the greeting of its process", function()
    local status, out, err = run(with_lib(q(build .. "/hello")))
    assert.are.equal(0, status, err)
    assert.is_truthy(out:match("^hello from <0%.%d+%.0>\n$"), out)
    assert.are.equal("", err)
  end)
end)

describe("make install DESTDIR=stage", function()
  local stage
  before_each(function() stage = must("mktemp -d /tmp/mb_embed_stage.XXXXXX") end)
  after_each(function() os.execute("rm -rf " .. q(stage)) end)

  it("stages every file under DESTDIR/PREFIX, the .pc naming PREFIX; uninstall removes them",
     function()
    local prefix = "/opt/moonbeam-spec"
    local args = " DESTDIR=" .. q(stage) .. " PREFIX=" .. prefix
    make("install" .. args)
    local expected = {}
    for i, path in ipairs(installed()) do expected[i] = prefix:sub(2) .. "/" .. path end
    assert.are.same(expected, tree(stage))
    assert.are.equal(pc_text(prefix),
                     support.read_file(stage .. prefix .. "/lib/pkgconfig/moonbeam.pc"))
    assert.are.equal(SOFILE, must("readlink " .. q(stage .. prefix .. "/lib/" .. SONAME)))
    make("uninstall" .. args)
    assert.are.same({}, tree(stage))
  end)

  it("puts the libraries and the .pc in LIBDIR, which the .pc names under ${prefix}",
     function()
    local prefix = "/opt/moonbeam-spec"
    make("install DESTDIR=" .. q(stage) .. " PREFIX=" .. prefix .. " "
         .. q("LIBDIR=$(PREFIX)/lib64"))
    assert.are.same(installed("lib64"), tree(stage .. prefix))
    assert.are.equal(pc_text(prefix, "lib64"),
                     support.read_file(stage .. prefix .. "/lib64/pkgconfig/moonbeam.pc"))
  end)
end)

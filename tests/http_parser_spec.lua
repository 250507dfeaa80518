-- http_parser_spec.lua — the HTTP/1.1 request and response parser, without sockets.
local http = require "http"

local function req(s) return (s:gsub("\n", "\r\n")) end

--- parse_request's three results, as a table, for exact comparisons of failures.
local function fails(buf, limits)
  local r, err, status = http.parse_request(buf, 1, limits)
  assert.is_nil(r)
  return {err, status}
end

describe("http.parse_request", function()
  describe("a valid request", function()
    it("gives method, target, path, query, version, lower-case headers, body and next", function()
      local buf = req("GET /a/b?x=1&y=2 HTTP/1.1\nHost: example.com\nX-Thing:  v  \nAccept: */*\n\n")
      local r, next = http.parse_request(buf)
      assert.are.same({method = "GET", target = "/a/b?x=1&y=2", path = "/a/b", query = "x=1&y=2",
                       version = "1.1", keep_alive = true, length = 0, body = "",
                       headers = {host = "example.com", ["x-thing"] = "v", accept = "*/*"}}, r)
      assert.are.equal(#buf + 1, next)
    end)

    it("has no query when the target has no '?', and an empty one for a bare '?'", function()
      local r = http.parse_request(req("GET /p HTTP/1.1\nHost: h\n\n"))
      assert.are.equal("/p", r.path)
      assert.is_nil(r.query)
      r = http.parse_request(req("GET /p? HTTP/1.1\nHost: h\n\n"))
      assert.are.equal("", r.query)
    end)

    it("joins repeated fields with ', ' in arrival order", function()
      local r = http.parse_request(req("GET / HTTP/1.1\nHost: h\nA: 1\nB: x\na: 2\n\n"))
      assert.are.same({host = "h", a = "1, 2", b = "x"}, r.headers)
    end)

    it("reads a Content-Length body and leaves what follows", function()
      local buf = req("PUT /k HTTP/1.1\nHost: h\nContent-Length: 5\n\n") .. "hello" .. "GET"
      local r, next = http.parse_request(buf)
      assert.are.equal("hello", r.body)
      assert.are.equal("GET", buf:sub(next))
    end)

    it("accepts identical repeated Content-Length values", function()
      local r = http.parse_request(req("PUT /k HTTP/1.1\nHost: h\nContent-Length: 2\nContent-Length: 2\n\n") .. "ab")
      assert.are.equal("ab", r.body)
    end)

    it("skips empty lines before the request line and accepts bare LF line ends", function()
      local buf = "\r\n\r\nGET / HTTP/1.1\nHost: h\n\n"
      local r, next = http.parse_request(buf)
      assert.are.equal("GET", r.method)
      assert.are.equal(#buf + 1, next)
    end)

    it("accepts HTTP/1.0 without Host; keep_alive only with Connection: keep-alive", function()
      local r = http.parse_request(req("GET / HTTP/1.0\n\n"))
      assert.are.equal("1.0", r.version)
      assert.is_false(r.keep_alive)
      r = http.parse_request(req("GET / HTTP/1.0\nConnection: Keep-Alive\n\n"))
      assert.is_true(r.keep_alive)
    end)

    it("is not keep_alive in HTTP/1.1 with Connection: close", function()
      local r = http.parse_request(req("GET / HTTP/1.1\nHost: h\nConnection: foo, Close\n\n"))
      assert.is_false(r.keep_alive)
    end)

    it("parses pipelined requests one after the other", function()
      local buf = req("GET /1 HTTP/1.1\nHost: h\n\nPOST /2 HTTP/1.1\nHost: h\nContent-Length: 3\n\nabc" ..
                      "GET /3 HTTP/1.1\nHost: h\n\n")
      local paths, pos = {}, 1
      while pos <= #buf do
        local r, next = http.parse_request(buf, pos)
        paths[#paths + 1] = r.method .. " " .. r.path .. " " .. r.body
        pos = next
      end
      assert.are.same({"GET /1 ", "POST /2 abc", "GET /3 "}, paths)
      assert.are.equal(#buf + 1, pos)
    end)

    it("says incomplete for every proper prefix of a valid request", function()
      local buf = req("POST /x?q HTTP/1.1\nHost: h\nContent-Length: 4\n\nbody")
      for n = 0, #buf - 1 do
        local r, err, status = http.parse_request(buf:sub(1, n))
        assert.are.same({nil, "incomplete", nil}, {r, err, status}, "prefix of length " .. n)
      end
      assert.are.equal("body", http.parse_request(buf).body)
    end)
  end)

  describe("a chunked body", function()
    local head = req("POST /up HTTP/1.1\nHost: h\nTransfer-Encoding: chunked\n\n")

    it("is decoded, with chunk extensions and trailers dropped", function()
      local buf = head .. "5\r\nhello\r\n6;name=val\r\n world\r\n0\r\nX-Sum: 1\r\n\r\nNEXT"
      local r, next = http.parse_request(buf)
      assert.are.equal("hello world", r.body)
      assert.is_true(r.chunked)
      assert.are.equal("NEXT", buf:sub(next))
    end)

    it("accepts upper-case hex sizes and leading zeros", function()
      local body = string.rep("z", 26)
      local r = http.parse_request(head .. "001A\r\n" .. body .. "\r\n0\r\n\r\n")
      assert.are.equal(body, r.body)
    end)

    it("says incomplete for every proper prefix", function()
      local buf = head .. "3\r\nabc\r\n2;x\r\nde\r\n0\r\nT: v\r\n\r\n"
      for n = #head, #buf - 1 do
        local r, err = http.parse_request(buf:sub(1, n))
        assert.are.same({nil, "incomplete"}, {r, err}, "prefix of length " .. n)
      end
      assert.are.equal("abcde", http.parse_request(buf).body)
    end)

    it("is 400 when a chunk is longer than its size, or the size is not hex", function()
      assert.are.same({"bad_request", 400}, fails(head .. "3\r\nabcd\r\n0\r\n\r\n"))
      assert.are.same({"bad_request", 400}, fails(head .. "zz\r\nabc\r\n0\r\n\r\n"))
      assert.are.same({"bad_request", 400}, fails(head .. "3\r\nabc\r\n0\r\nbad trailer\r\n\r\n"))
    end)

    it("is 413 past max_body_size, counted over all chunks", function()
      local limits = {max_body_size = 10}
      assert.are.same({"body_too_large", 413}, fails(head .. "6\r\nabcdef\r\n5\r\nghijk\r\n0\r\n\r\n", limits))
      assert.are.same({"body_too_large", 413}, fails(head .. "FFFFFFFFFFFFFFFF\r\n", limits))
      assert.are.equal("abcdefghij",
        http.parse_request(head .. "6\r\nabcdef\r\n4\r\nghij\r\n0\r\n\r\n", 1, limits).body)
    end)
  end)

  describe("a malformed request is 400", function()
    local cases = {
      {"garbage bytes", "\0\1\2\3\n\n"},
      {"a lower-level control byte in the method", "G\1T / HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"no target", "GET HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"two spaces", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"a space in the target", "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"no version", "GET /\r\nHost: h\r\n\r\n"},
      {"a bad version", "GET / HTTP/one\r\nHost: h\r\n\r\n"},
      {"a lower-case protocol", "GET / http/1.1\r\nHost: h\r\n\r\n"},
      {"HTTP/0.9", "GET / HTTP/0.9\r\n\r\n"},
      {"whitespace before the colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n"},
      {"a field without a colon", "GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n"},
      {"an empty field name", "GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n"},
      {"obsolete line folding", "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\n  2\r\n\r\n"},
      {"a CR alone in a value", "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r2\r\n\r\n"},
      {"a NUL in a value", "GET / HTTP/1.1\r\nHost: h\r\nA: 1\0\r\n\r\n"},
      {"HTTP/1.1 without Host", "GET / HTTP/1.1\r\nA: b\r\n\r\n"},
      {"HTTP/1.1 with two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
      {"a non-numeric Content-Length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n"},
      {"a negative Content-Length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n"},
      {"differing Content-Lengths", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"},
      {"both Content-Length and Transfer-Encoding",
       "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"chunked not last", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"},
      {"chunked twice", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"},
      {"Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        assert.are.same({"bad_request", 400}, fails(c[2]))
      end)
    end

    it("as soon as the bytes so far cannot start a request (no need to wait)", function()
      assert.are.same({"bad_request", 400}, fails("\22\3\1\0\165\1"))           -- a TLS hello
      assert.are.same({"bad_request", 400}, fails("GET / HTTP/1.1\r\nHost: h\r\nbad line\r\n"))
      assert.are.same({"bad_request", 400}, fails("GET /\t"))
    end)
  end)

  describe("other refusals", function()
    it("505 for an HTTP version other than 1.0 and 1.1", function()
      assert.are.same({"version_not_supported", 505}, fails("GET / HTTP/2.0\r\nHost: h\r\n\r\n"))
    end)

    it("501 for a transfer coding other than chunked", function()
      assert.are.same({"not_implemented", 501},
        fails("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"))
    end)

    it("413 for a Content-Length past max_body_size, before the body comes", function()
      assert.are.same({"body_too_large", 413},
        fails("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1048577\r\n\r\n"))
      assert.are.same({"body_too_large", 413},
        fails("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n"))
      assert.are.same({"body_too_large", 413},
        fails("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n", {max_body_size = 10}))
      assert.are.equal(1048576, http.parse_head(
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1048576\r\n\r\n").length)
    end)

    it("431 for header fields past max_header_size, complete or not", function()
      local big = "GET / HTTP/1.1\r\nHost: h\r\nX: " .. string.rep("a", 8192)
      assert.are.same({"header_too_large", 431}, fails(big))
      assert.are.same({"header_too_large", 431}, fails(big .. "\r\n\r\n"))
      assert.are.same({"header_too_large", 431},
        fails("GET / HTTP/1.1\r\nHost: h\r\nX: 12345\r\n\r\n", {max_header_size = 30}))
    end)

    it("431 for more than max_headers fields", function()
      local lines = {"GET / HTTP/1.1", "Host: h"}
      for i = 1, 100 do lines[#lines + 1] = "X" .. i .. ": v" end
      local buf = table.concat(lines, "\r\n") .. "\r\n\r\n"
      assert.are.same({"header_too_large", 431}, fails(buf))
      assert.is_table(http.parse_request(buf, 1, {max_headers = 101}))
    end)

    it("414 for a request line past max_header_size", function()
      assert.are.same({"uri_too_long", 414}, fails("GET /" .. string.rep("a", 8200)))
      assert.are.same({"uri_too_long", 414},
        fails("GET /" .. string.rep("a", 8200) .. " HTTP/1.1\r\nHost: h\r\n\r\n"))
    end)
  end)
end)

describe("http.parse_request on random bytes", function()
  it("never raises: a request, incomplete, or a refusal with its status", function()
    math.randomseed(7)
    local alphabet = {"GET ", "/", " HTTP/1.1", "\r\n", "\n", ":", " ", "Host: h", "0",
                      "Transfer-Encoding: chunked", "Content-Length: 3", "a", "\0", "\255"}
    local seen = {}
    for _ = 1, 3000 do
      local parts = {}
      for i = 1, math.random(1, 12) do
        parts[i] = math.random() < 0.5 and alphabet[math.random(#alphabet)]
                   or string.char(math.random(0, 255))
      end
      local buf = table.concat(parts)
      local ok, r, err, status = pcall(http.parse_request, buf)
      assert.is_true(ok, r)
      local key = type(r) == "table" and "request" or (err .. " " .. tostring(status))
      assert.is_truthy(({request = true, ["incomplete nil"] = true, ["bad_request 400"] = true,
                         ["version_not_supported 505"] = true,
                         ["not_implemented 501"] = true})[key], key)
      seen[key] = true
    end
    assert.is_true(seen["incomplete nil"] and seen["bad_request 400"])
  end)
end)

describe("http.parse_response", function()
  it("reads a Content-Length response and what follows", function()
    local buf = "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nX-A: b\r\n\r\nnopHTTP"
    local r, next = http.parse_response(buf)
    assert.are.same({version = "1.1", status = 404, reason = "Not Found", body = "nop",
                     headers = {["content-length"] = "3", ["x-a"] = "b"}}, r)
    assert.are.equal("HTTP", buf:sub(next))
  end)

  it("reads a chunked response, and one that ends at EOF", function()
    local r = http.parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
    assert.are.equal("hi", r.body)
    local buf = "HTTP/1.0 200 OK\r\n\r\nall of it"
    assert.are.same({nil, "incomplete"}, {http.parse_response(buf)})
    assert.are.equal("all of it", http.parse_response(buf, 1, {eof = true}).body)
  end)

  it("has no body for HEAD, 204 and 304", function()
    local buf = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
    local r, next = http.parse_response(buf, 1, {head = true})
    assert.are.equal("", r.body)
    assert.are.equal(#buf + 1, next)
    assert.are.equal("", http.parse_response("HTTP/1.1 204 No Content\r\n\r\n").body)
  end)

  it("says bad_response for a bad status line", function()
    assert.are.same({nil, "bad_response"}, {http.parse_response("HTTP/1.1 2000 OK\r\n\r\n")})
  end)
end)

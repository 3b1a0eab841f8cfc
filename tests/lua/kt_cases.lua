-- Procedures that exercise the kt module; each writes what it saw into outmap. Run against the
-- real ktserver (tests/record_lua_cases.py) and the embedded server (tests/test_lua_kt.py).
kt = __kyototycoon__
local db = kt.db

local function put(outmap, prefix, ...)
  local n = select("#", ...)
  outmap[prefix .. "#"] = n
  for i = 1, n do
    local v = select(i, ...)
    if type(v) == "table" then
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = tostring(k) end
      table.sort(keys)
      local parts = {}
      for _, k in ipairs(keys) do
        local x = v[k] or v[tonumber(k)]
        parts[#parts + 1] = k .. "=" .. tostring(x)
      end
      outmap[prefix .. i] = "{" .. table.concat(parts, ",") .. "}"
    else
      outmap[prefix .. i] = type(v) == "string" and v or tostring(v)
    end
  end
end

function echo(inmap, outmap)
  for k, v in pairs(inmap) do outmap[k] = v end
  return kt.RVSUCCESS
end

function numbers(inmap, outmap)
  outmap.int = 42
  outmap.neg = -7
  outmap.frac = 1.25
  outmap.third = 1 / 3
  outmap.big = 2 ^ 53
  outmap.yes = true
  outmap.no = false
  outmap[7] = "seven"
  outmap[2.5] = "two and a half"
  outmap.tbl = {}
  return kt.RVSUCCESS
end

function retcode(inmap, outmap)
  outmap.x = "ignored unless success"
  return tonumber(inmap.rv)
end

function nothing(inmap, outmap)
  outmap.a = "1"
end

function garbage(inmap, outmap)
  outmap.a = "1"
  return "not a number"
end

function raise(inmap, outmap)
  error("deliberate failure")
end

function funcs(inmap, outmap)
  put(outmap, "atoi", kt.atoi("  -12abc"), kt.atoi("x"), kt.atoi(7.9))
  put(outmap, "atoix", kt.atoix("2k"), kt.atoix("3M"), kt.atoix("1.5g"))
  put(outmap, "atof", kt.atof("3.25e2xyz"), kt.atof("-0.5"), kt.atof(""))
  put(outmap, "murmur", kt.hash_murmur(""), kt.hash_murmur("hello"), kt.hash_murmur("abcdefghijk\0\255"))
  put(outmap, "fnv", kt.hash_fnv(""), kt.hash_fnv("hello"), kt.hash_fnv("abcdefghijk\0\255"))
  put(outmap, "levdist", kt.levdist("kitten", "sitting"), kt.levdist("\227\129\130x", "\227\129\132x"),
      kt.levdist("\227\129\130x", "\227\129\132x", true))
  put(outmap, "split", kt.split("a,b;;c", ",;"), kt.split("x\0y\0"), kt.split("abc", ""))
  put(outmap, "bit", kt.bit("and", 12, 10), kt.bit("or", 12, 10), kt.bit("xor", 12, 10), kt.bit("not", 0),
      kt.bit("left", 1, 4), kt.bit("right", 256, 4))
  put(outmap, "strstr", kt.strstr("hello world", "o"), kt.strstr("hello", "z"),
      kt.strstr("a-b-c", "-", "+"))
  put(outmap, "strfwm", kt.strfwm("prefix-x", "prefix"), kt.strfwm("x", "prefix"))
  put(outmap, "strbwm", kt.strbwm("name.lua", ".lua"), kt.strbwm("x", ".lua"))
  put(outmap, "regex", kt.regex("abc123", "[0-9]+"), kt.regex("abc", "^x"), kt.regex("a1b22", "[0-9]+", "#"))
  put(outmap, "codec", kt.codec("url", "a b/\255"), kt.codec("~url", "a%20b%2F"), kt.codec("base", "hi\0\255"),
      kt.codec("~base", "aGkA/w=="), kt.codec("hex", "\0\255a"), kt.codec("~hex", "00ff61"),
      kt.codec("quote", "a=b\255"), kt.codec("~quote", "a=3Db=FF"))
  local z = kt.codec("zlib", "hello hello hello")
  put(outmap, "zlib", kt.codec("~zlib", z), kt.codec("~deflate", kt.codec("deflate", "x\0y")),
      kt.codec("~gzip", kt.codec("gzip", "gz")))
  put(outmap, "pack", kt.codec("hex", kt.pack("CsIlnNMw", 255, -2, 7, -1, 258, 65536, 1, 300)))
  put(outmap, "pack2", kt.codec("hex", kt.pack("C*", {1, 2, 3}, 4)), kt.codec("hex", kt.pack("C2d", 9, 8, 0.5)))
  put(outmap, "unpack", kt.unpack("CsIlnNMw", kt.pack("CsIlnNMw", 255, -2, 7, -1, 258, 65536, 1, 300)))
  put(outmap, "unpack2", kt.unpack("c*", "\255\1\127"), kt.unpack("N", "\0\0"))
  put(outmap, "arraydump", kt.codec("hex", kt.arraydump({"a", "", 3, 2.5, string.rep("x", 200)})))
  put(outmap, "arrayload", kt.arrayload(kt.arraydump({"a", "\0b", 3})))
  put(outmap, "mapdump", kt.codec("hex", kt.mapdump({k = "v"})), kt.mapload(kt.mapdump({a = "1", [2] = 3})))
  put(outmap, "mapload", kt.mapload("\1\1ab\2\0cd"))
  put(outmap, "fields", kt.RVSUCCESS, kt.RVENOIMPL, kt.RVEINVALID, kt.RVELOGIC, kt.RVEINTERNAL,
      type(kt.VERSION), type(kt.thid), kt.db == kt.dbs[1], kt.dbs[2] ~= nil)
  put(outmap, "time", type(kt.time()), kt.time() > 1.5e9)
  return kt.RVSUCCESS
end

function invalid(inmap, outmap)
  local calls = {
    atoi = function() return kt.atoi() end,
    split = function() return kt.split() end,
    set = function() return db:set("only-key") end,
    get = function() return db:get() end,
    cursor_jump = function() return db:cursor():jump("a", "b") end,
    error_new = function() return kt.Error.new() end,
  }
  local ok, err = pcall(calls[inmap.fn])
  outmap.ok = ok
  outmap.err = tostring(err)
  return kt.RVSUCCESS
end

function errors(inmap, outmap)
  local e = kt.Error:new(kt.Error.NOREC, "gone")
  put(outmap, "e", e:code(), e:name(), e:message(), tostring(e))
  e:set(kt.Error.LOGIC, "changed")
  put(outmap, "set", e:code(), e:name(), tostring(e))
  local d = kt.Error:new()
  put(outmap, "default", d:code(), d:message(), tostring(d))
  put(outmap, "codes", kt.Error.SUCCESS, kt.Error.NOIMPL, kt.Error.INVALID, kt.Error.NOREPOS, kt.Error.NOPERM,
      kt.Error.BROKEN, kt.Error.DUPREC, kt.Error.NOREC, kt.Error.LOGIC, kt.Error.SYSTEM, kt.Error.MISC)
  db:clear()
  put(outmap, "miss", db:get("missing"), db:error():code(), db:error():name(), tostring(db:error()))
  db:add("dup", "1")
  put(outmap, "dup", db:add("dup", "2"), db:error():code(), tostring(db:error()))
  put(outmap, "incr", db:increment("dup", 1), db:error():code(), tostring(db:error()))
  put(outmap, "cas", db:cas("dup", "nope", "x"), db:error():code(), tostring(db:error()))
  db:clear()
  return kt.RVSUCCESS
end

function dbops(inmap, outmap)
  db:clear()
  local k1, v1 = "k\0\t\255", "v\0\n\255"
  put(outmap, "set", db:set(k1, v1), db:get(k1))
  put(outmap, "check", db:check(k1), db:check("none"))
  put(outmap, "add", db:add(k1, "x"), db:add("a2", "x"), db:get("a2"))
  put(outmap, "replace", db:replace("none", "x"), db:replace("a2", "y"), db:get("a2"))
  put(outmap, "append", db:append("a2", "z"), db:append("new", "n"), db:get("a2"), db:get("new"))
  put(outmap, "incr", db:increment("n", 5), db:increment("n", -2), db:increment("n2", 1, 10),
      db:increment("n3", 1, -1 / 0), db:increment("n", 1, 1 / 0))
  put(outmap, "incrd", db:increment_double("d", 1.5), db:increment_double("d", -0.25),
      db:increment_double("d2", 1, 2.5))
  put(outmap, "cas", db:cas("c", nil, "1"), db:cas("c", "1", "2"), db:get("c"), db:cas("c", "2", nil),
      db:get("c"), db:cas("c", "x", "y"))
  put(outmap, "remove", db:remove("a2"), db:remove("a2"))
  put(outmap, "seize", db:seize("new"), db:seize("new"))
  put(outmap, "count", db:count(), type(db:size()), db:path())
  put(outmap, "set_bulk", db:set_bulk({b1 = "1", b2 = 2, [3] = "three", b4 = true}), db:get("b2"), db:get("3"))
  put(outmap, "get_bulk", db:get_bulk({"b1", "b2", "zz", 3}))
  put(outmap, "remove_bulk", db:remove_bulk({"b1", "zz", "b2"}), db:count())
  put(outmap, "match_prefix", db:match_prefix("b"), db:match_prefix("", 2))
  put(outmap, "match_regex", db:match_regex("^[bc3]"), db:match_regex("["))
  put(outmap, "match_similar", db:match_similar("n", 1))
  db["idx"] = "via newindex"
  put(outmap, "index", db["idx"], db.idx, db["absent"])
  db["idx"] = nil
  put(outmap, "index2", db["idx"])
  local st = db:status()
  put(outmap, "status", type(st), st.count)
  put(outmap, "tostring", (tostring(db):gsub("%d+$", "N")))
  put(outmap, "clear", db:clear(), db:count())
  put(outmap, "sync", db:synchronize(), db:synchronize(false, function(path, count, size) return true end))
  return kt.RVSUCCESS
end

function expiry(inmap, outmap)
  db:clear()
  db:set("abs", "v", -2000000000)
  local _, xt = db:get("abs")
  outmap.abs = xt
  db:set("never", "v")
  local _, nxt = db:get("never")
  outmap.never = nxt
  db:set("rel", "v", 100)
  local _, rxt = db:get("rel")
  outmap.rel_ok = math.abs(rxt - (kt.time() + 100)) < 3
  db:clear()
  return kt.RVSUCCESS
end

function visitors(inmap, outmap)
  db:clear()
  db:set_bulk({a = "1", b = "2", c = "3", d = "4"})
  db:set("keepxt", "x", -2000000000)
  local seen = {}
  local v = kt.Visitor:new()
  function v:visit_full(key, value, xt)
    seen[#seen + 1] = key .. "=" .. value
    if key == "a" then return value .. "!" end
    if key == "b" then return kt.Visitor.REMOVE end
    if key == "keepxt" then return "y" end
    return kt.Visitor.NOP
  end
  function v:visit_empty(key)
    seen[#seen + 1] = key .. "?"
    if key == "e" then return "new", -2100000000 end
    return kt.Visitor.NOP
  end
  put(outmap, "accept", db:accept("a", v), db:accept("b", v), db:accept("e", v), db:accept("f", v),
      db:accept("keepxt", v))
  put(outmap, "after", db:get("a"), db:get("b"), db:get("e"), db:get("f"), db:get("keepxt"))
  put(outmap, "ro", db:accept("c", function(k, val) return "changed" end, false), db:get("c"))
  put(outmap, "fn", db:accept("c", function(k, val, xt) return val .. "+" end), db:get("c"))
  local order = {}
  local hooks = {visit_before = function() order[#order + 1] = "before" end,
                 visit_after = function() order[#order + 1] = "after" end,
                 visit_full = function(self, k, val) order[#order + 1] = k return val .. k end,
                 visit_empty = function(self, k) order[#order + 1] = k .. "?" end}
  put(outmap, "bulk", db:accept_bulk({"c", "zz", "d"}, hooks), table.concat(order, " "), db:get("d"))
  local keys = {}
  put(outmap, "iterate", db:iterate(function(k, val)
    keys[#keys + 1] = k
    if k == "d" then return kt.Visitor.REMOVE end
    return val .. "."
  end), table.concat(keys, " "), db:get("a"), db:get("d"))
  put(outmap, "iterate_ro", db:iterate(function(k, val) return "zzz" end, false), db:get("a"))
  put(outmap, "seen", table.concat(seen, " "))
  put(outmap, "raise", db:accept("a", function() error("in visitor") end), db:get("a"))
  db:clear()
  return kt.RVSUCCESS
end

function cursors(inmap, outmap)
  db:clear()
  db:set_bulk({k1 = "v1", k2 = "v2", k3 = "v3", ["k\0"] = "nul"})
  local cur = db:cursor()
  put(outmap, "jump", cur:jump(), cur:get_key(), cur:get_value())
  put(outmap, "get", cur:get())
  put(outmap, "step", cur:step(), cur:get_key(true), cur:get_key())
  put(outmap, "jumpk", cur:jump("k2"), cur:get_key(), cur:jump("zz"), cur:get_key())
  put(outmap, "jump_back", cur:jump_back(), cur:get_key(), cur:jump_back("k2x"), cur:get_key())
  put(outmap, "step_back", cur:jump("k2"), cur:step_back(), cur:get_key())
  local sv_jump, sv_ok = cur:jump("k2"), cur:set_value("V2")
  local sv_key = cur:get_key()
  local sv_value, sv_xt = db:get("k2")
  put(outmap, "set_value", sv_jump, sv_ok, sv_key, sv_value, math.abs(sv_xt - kt.time()) < 3)
  put(outmap, "set_value_xt", cur:jump("k2"), cur:set_value("V2", 100, true), cur:get_key(),
      math.abs(select(2, db:get("k2")) - kt.time()) < 3)
  put(outmap, "remove", cur:jump("k2"), cur:remove(), cur:get_key(), db:get("k2"))
  put(outmap, "seize", cur:jump("k3"), cur:seize())
  put(outmap, "accept", cur:jump(), cur:accept(function(k, v) return v .. "*" end), db:get("k\0"))
  put(outmap, "db", cur:db() == db, cur:error():code())
  put(outmap, "tostring", tostring(cur))
  cur:jump()
  local pairs_seen = {}
  for k, v in db:pairs() do pairs_seen[#pairs_seen + 1] = k .. "=" .. v end
  put(outmap, "pairs", table.concat(pairs_seen, " "))
  local c2 = db:cursor()
  c2:jump()
  put(outmap, "call", c2(), c2())
  cur:disable()
  put(outmap, "disabled", tostring(cur), (pcall(cur.jump, cur)))
  local inside
  db:cursor_process(function(c) c:jump() inside = c:get_key() end)
  put(outmap, "process", inside)
  db:clear()
  return kt.RVSUCCESS
end

function transactions(inmap, outmap)
  db:clear()
  db:set("t", "before")
  put(outmap, "commit", db:transaction(function() db:set("t", "committed") return true end), db:get("t"))
  put(outmap, "abort", db:transaction(function() db:set("t", "aborted") db:set("u", "x") return false end),
      db:get("t"), db:get("u"))
  put(outmap, "manual", db:begin_transaction(), db:set("t", "m"), db:end_transaction(false), db:get("t"))
  db:clear()
  return kt.RVSUCCESS
end

function multidb(inmap, outmap)
  local other = kt.dbs[2]
  other:clear()
  kt.db:clear()
  other:set("o", "other")
  put(outmap, "sep", kt.db:get("o"), other:get("o"), kt.dbs[inmap.name] == other)
  other:clear()
  return kt.RVSUCCESS
end

function fileops(inmap, outmap)
  put(outmap, "open", db:open("x.kch"), db:error():code())
  put(outmap, "copy", db:copy("/tmp/nowhere/x"), db:error():code())
  return kt.RVSUCCESS
end

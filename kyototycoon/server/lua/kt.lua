-- The `kt` module of Kyoto Tycoon's scripting extension (myscript.cc), over the embedded server.
--
-- Loaded into every worker's Lua state before the user's script, as a chunk called with the
-- host table H (Python functions, see host.py). Argument checks, return values and error
-- messages follow myscript.cc; store operations go through H.op, which runs them on the
-- server's event loop (or directly while this worker holds the loop, see H.hold_begin).
local H = ...

local type, select, tostring, tonumber, error, setmetatable, getmetatable, rawget, rawset, next =
  type, select, tostring, tonumber, error, setmetatable, getmetatable, rawget, rawset, next
local floor, huge, format, unpack = math.floor, math.huge, string.format, unpack
local raw_pcall, raw_xpcall = pcall, xpcall
local expired = H.expired

local kt = {}
__kyototycoon__ = kt
_G.kt = kt  -- the alias scripts usually make themselves (kt = __kyototycoon__)
kt.VERSION = H.VERSION
kt.RVSUCCESS, kt.RVENOIMPL, kt.RVEINVALID, kt.RVELOGIC, kt.RVEINTERNAL = 0, 1, 2, 3, 5
kt.thid = H.thid

local function invarg(func) error(func .. ": invalid arguments", 0) end

-- lua_tolstring: strings, and numbers as "%.14g"; nil for anything else
local function tolstr(x)
  local t = type(x)
  if t == "string" then return x end
  if t == "number" then return tostring(x) end
  return nil
end
-- lua_tonumber: numbers and numeric strings, 0 otherwise
local function tonum(x) return tonumber(x) or 0 end
local function tobool(x) return x ~= nil and x ~= false end

-- StringBuilder / the number formatting of set_bulk and mapdump: integral numbers as %lld,
-- others as %f (six decimals), booleans as true/false (StringBuilder only)
local function numstr(num)
  if num == floor(num) then return format("%d", num) end
  return format("%f", num)
end
local function strbuild(x, booleans)
  local t = type(x)
  if t == "string" then return x end
  if t == "number" then return numstr(x) end
  if booleans and t == "boolean" then return x and "true" or "false" end
  return nil
end

-- A script must not catch the error that ends it past --script-timeout (or at shutdown).
local function rethrow_if_expired(ok, ...)
  if not ok and expired() then error((...), 0) end
  return ok, ...
end
pcall = function(f, ...) return rethrow_if_expired(raw_pcall(f, ...)) end
xpcall = function(f, h) return rethrow_if_expired(raw_xpcall(f, h)) end
if debug and debug.sethook then
  debug.sethook(function() if expired() then error(H.expired_message(), 0) end end, "", 10000)
end

---------------------------------------------------------------------------- module functions

function kt.log(kind, message)
  kind, message = tolstr(kind), tolstr(message)
  if kind and message then H.log(kind, message) end
  return nil
end

local function numfunc(name, impl)
  return function(...)
    if select("#", ...) ~= 1 then invarg(name) end
    local s = tolstr((...))
    if s == nil then return end
    return impl(s)
  end
end
kt.atoi = numfunc("kt_atoi", H.atoi)
kt.atoix = numfunc("kt_atoix", H.atoix)
kt.atof = numfunc("kt_atof", H.atof)
kt.hash_murmur = numfunc("kt_hash_murmur", H.hash_murmur)
kt.hash_fnv = numfunc("kt_hash_fnv", H.hash_fnv)

function kt.levdist(...)
  local argc = select("#", ...)
  if argc < 2 then invarg("kt_levdist") end
  local a, b, utf = ...
  a, b = tolstr(a), tolstr(b)
  if not a or not b then invarg("kt_levdist") end
  return H.levdist(a, b, argc > 2 and tobool(utf))
end

function kt.time(...)
  if select("#", ...) ~= 0 then invarg("kt_time") end
  return H.time()
end

function kt.sleep(...)
  local argc = select("#", ...)
  if argc > 1 then invarg("kt_sleep") end
  local message = H.sleep(argc > 0 and tonum((...)) or 0)
  if message then error(message, 0) end
end

function kt.pack(...)
  local argc = select("#", ...)
  if argc < 1 then invarg("kt_pack") end
  local fmt = tolstr((...))
  if not fmt then invarg("kt_pack") end
  local nums = {}
  for i = 2, argc do
    local v = select(i, ...)
    local t = type(v)
    if t == "number" or t == "string" then
      nums[#nums + 1] = tonum(v)
    elseif t == "table" then
      for j = 1, #v do nums[#nums + 1] = tonum(v[j]) end
    else
      nums[#nums + 1] = 0
    end
  end
  return H.pack(fmt, nums)
end

function kt.unpack(...)
  if select("#", ...) ~= 2 then invarg("kt_unpack") end
  local fmt, str = ...
  fmt, str = tolstr(fmt), tolstr(str)
  if not fmt then invarg("kt_unpack") end
  return H.unpack(fmt, str or "")
end

function kt.split(...)
  local argc = select("#", ...)
  if argc < 1 then invarg("kt_split") end
  local str, delims = ...
  str = tolstr(str)
  if not str then invarg("kt_split") end
  delims = argc > 1 and tolstr(delims) or nil
  local out = {}
  if delims then
    -- C string semantics: the input ends at its first NUL; each delimiter byte splits
    str = str:match("^[^%z]*")
    local set = {}
    for i = 1, #delims do set[delims:byte(i)] = true end
    local start = 1
    for i = 1, #str do
      if set[str:byte(i)] then
        out[#out + 1] = str:sub(start, i - 1)
        start = i + 1
      end
    end
    out[#out + 1] = str:sub(start)
  else
    local start = 1
    while true do
      local z = str:find("\0", start, true)
      if not z then out[#out + 1] = str:sub(start) break end
      out[#out + 1] = str:sub(start, z - 1)
      start = z + 1
    end
  end
  return out
end

function kt.codec(...)
  if select("#", ...) ~= 2 then invarg("kt_codec") end
  local mode, str = ...
  mode, str = tolstr(mode), tolstr(str)
  if not mode or not str then invarg("kt_codec") end
  return H.codec(mode, str)
end

function kt.bit(...)
  local argc = select("#", ...)
  if argc < 2 then invarg("kt_bit") end
  local mode, num, aux = ...
  mode = tolstr(mode)
  if not mode then invarg("kt_bit") end
  return H.bit(mode, tonum(num), argc > 2 and tonum(aux) or 0)
end

-- C strings: each argument ends at its first NUL
local function cstr(s) return (s:match("^[^%z]*")) end

function kt.strstr(...)
  local argc = select("#", ...)
  if argc < 2 then invarg("kt_strstr") end
  local str, pat, alt = ...
  str, pat = tolstr(str), tolstr(pat)
  if not str or not pat then invarg("kt_strstr") end
  str, pat = cstr(str), cstr(pat)
  alt = argc > 2 and tolstr(alt) or nil
  if alt then
    alt = cstr(alt)
    if #pat == 0 then return str end
    local parts, start = {}, 1
    while true do
      local i, j = str:find(pat, start, true)
      if not i then break end
      parts[#parts + 1] = str:sub(start, i - 1)
      parts[#parts + 1] = alt
      start = j + 1
    end
    parts[#parts + 1] = str:sub(start)
    return table.concat(parts)
  end
  return str:find(pat, 1, true) or 0
end

function kt.strfwm(...)
  if select("#", ...) < 2 then invarg("kt_strfwm") end
  local str, pat = ...
  str, pat = tolstr(str), tolstr(pat)
  if not str or not pat then invarg("kt_strfwm") end
  str, pat = cstr(str), cstr(pat)
  return str:sub(1, #pat) == pat
end

function kt.strbwm(...)
  if select("#", ...) < 2 then invarg("kt_strbwm") end
  local str, pat = ...
  str, pat = tolstr(str), tolstr(pat)
  if not str or not pat then invarg("kt_strbwm") end
  str, pat = cstr(str), cstr(pat)
  return #pat == 0 or str:sub(-#pat) == pat
end

function kt.regex(...)
  local argc = select("#", ...)
  if argc < 2 then invarg("kt_regex") end
  local str, pat, alt = ...
  str, pat = tolstr(str), tolstr(pat)
  if not str or not pat then invarg("kt_regex") end
  alt = argc > 2 and tolstr(alt) or nil
  return H.regex(cstr(str), cstr(pat), alt and cstr(alt))
end

-- kc::writevarnum / readvarnum: big-endian groups of 7 bits, high bit = more follows
local function varnum(n)
  local bytes = {n % 128}
  n = floor(n / 128)
  while n > 0 do
    table.insert(bytes, 1, n % 128 + 128)
    n = floor(n / 128)
  end
  return string.char(unpack(bytes))
end
local function readvarnum(s, pos)
  local n, size = 0, #s
  while pos <= size do
    local c = s:byte(pos)
    pos = pos + 1
    n = n * 128 + c % 128
    if c < 128 then return n, pos end
  end
  return n, pos
end

function kt.arraydump(...)
  local src = ...
  if select("#", ...) ~= 1 or type(src) ~= "table" then invarg("kt_arraydump") end
  local parts = {}
  for i = 1, #src do
    local v = src[i]
    local t = type(v)
    if t == "number" then
      v = numstr(v)
    elseif t ~= "string" then
      v = nil
    end
    if v then
      parts[#parts + 1] = varnum(#v)
      parts[#parts + 1] = v
    end
  end
  return table.concat(parts)
end

function kt.arrayload(...)
  if select("#", ...) ~= 1 then invarg("kt_arrayload") end
  local s = tolstr((...))
  if not s then invarg("kt_arrayload") end
  local out, pos, size = {}, 1, #s
  while pos <= size do
    local vsiz
    vsiz, pos = readvarnum(s, pos)
    if vsiz > size - pos + 1 then break end
    out[#out + 1] = s:sub(pos, pos + vsiz - 1)
    pos = pos + vsiz
  end
  return out
end

function kt.mapdump(...)
  local src = ...
  if select("#", ...) ~= 1 or type(src) ~= "table" then invarg("kt_mapdump") end
  local parts = {}
  for k, v in next, src do
    local ks, vs
    if type(k) == "number" then ks = numstr(k)
    elseif type(k) == "string" then ks = k end
    if type(v) == "number" then vs = numstr(v)
    elseif type(v) == "string" then vs = v end
    if ks and vs then
      parts[#parts + 1] = varnum(#ks) .. varnum(#vs)
      parts[#parts + 1] = ks
      parts[#parts + 1] = vs
    end
  end
  return table.concat(parts)
end

function kt.mapload(...)
  if select("#", ...) ~= 1 then invarg("kt_mapload") end
  local s = tolstr((...))
  if not s then invarg("kt_mapload") end
  local out, pos, size = {}, 1, #s
  while size - pos + 1 > 1 do
    local ksiz, vsiz
    ksiz, pos = readvarnum(s, pos)
    if size - pos + 1 < 1 then break end
    vsiz, pos = readvarnum(s, pos)
    if ksiz + vsiz > size - pos + 1 then break end
    out[s:sub(pos, pos + ksiz - 1)] = s:sub(pos + ksiz, pos + ksiz + vsiz - 1)
    pos = pos + ksiz + vsiz
  end
  return out
end

---------------------------------------------------------------------------- Error

local ERROR_NAMES = {
  [0] = "success", [1] = "not implemented", [2] = "invalid operation", [3] = "no repository",
  [4] = "no permission", [5] = "broken file", [6] = "record duplication", [7] = "no record",
  [8] = "logical inconsistency", [9] = "system error", [15] = "miscellaneous error",
}
local function codename(code) return ERROR_NAMES[floor(tonum(code)) % 4294967296] or "unknown error" end

local Error = {SUCCESS = 0, NOIMPL = 1, INVALID = 2, NOREPOS = 3, NOPERM = 4, BROKEN = 5,
               DUPREC = 6, NOREC = 7, LOGIC = 8, SYSTEM = 9, MISC = 15}
kt.Error = Error
Error.meta_ = {}
local function err_set(...)
  local self, code, message = ...
  if select("#", ...) ~= 3 or type(self) ~= "table" then invarg("err_set") end
  if type(tonumber(code)) == "number" and (type(message) == "string" or type(message) == "number") then
    self.code_, self.message_ = code, message
  end
  return nil
end
local function err_code(...)
  local self = ...
  if select("#", ...) ~= 1 or type(self) ~= "table" then invarg("err_code") end
  return self.code_
end
local function err_name(...)
  local self = ...
  if select("#", ...) ~= 1 or type(self) ~= "table" then invarg("err_name") end
  return codename(self.code_)
end
local function err_message(...)
  local self = ...
  if select("#", ...) ~= 1 or type(self) ~= "table" then invarg("err_message") end
  return self.message_
end
Error.meta_.__tostring = function(...)
  local self = ...
  if select("#", ...) ~= 1 or type(self) ~= "table" then invarg("err_tostring") end
  return codename(self.code_) .. ": " .. tostring(tolstr(self.message_))
end
function Error.new(...)
  local argc = select("#", ...)
  local cls, code, message = ...
  if argc < 1 or type(cls) ~= "table" or argc > 3 then invarg("err_new") end
  local obj = {set = err_set, code = err_code, name = err_name, message = err_message}
  if argc > 2 and type(tonumber(code)) == "number" and
      (type(message) == "string" or type(message) == "number") then
    obj.code_, obj.message_ = code, message
  else
    obj.code_, obj.message_ = 0, "error"
  end
  return setmetatable(obj, cls.meta_)
end

---------------------------------------------------------------------------- Visitor

-- lightuserdata in ktserver; unique userdata here (the same test: type(x) == "userdata")
local NOP, REMOVE = newproxy(false), newproxy(false)
local Visitor = {NOP = NOP, REMOVE = REMOVE, meta_ = {}}
kt.Visitor = Visitor
local function vis_visit_full(...)
  if select("#", ...) ~= 3 or type((...)) ~= "table" then invarg("vis_visit_full") end
  return nil
end
local function vis_visit_empty(...)
  if select("#", ...) ~= 2 or type((...)) ~= "table" then invarg("vis_visit_empty") end
  return nil
end
function Visitor.new(...)
  if select("#", ...) ~= 1 or type((...)) ~= "table" then invarg("vis_new") end
  return setmetatable({visit_full = vis_visit_full, visit_empty = vis_visit_empty}, (...).meta_)
end

-- SoftVisitor: what a visitor says to do with one record. Returns the new value (a string),
-- REMOVE, or nil (leave it), and the expiration for a new value. Errors inside the visitor
-- are swallowed (the record is left alone), as ktserver's lua_pcall does.
local function visit_full(visitor, key, value, xt, writable)
  local ok, rv, rxt
  if type(visitor) == "table" then
    local fn = visitor.visit_full
    if type(fn) ~= "function" then return nil end
    ok, rv, rxt = raw_pcall(fn, visitor, key, value, xt)
  elseif type(visitor) == "function" then
    ok, rv, rxt = raw_pcall(visitor, key, value, xt)
  else
    return nil
  end
  if not ok then
    if expired() then error(rv, 0) end
    return nil
  end
  if not writable then return nil end
  if rv == REMOVE then return REMOVE end
  if type(rv) == "userdata" then return nil end
  local s = tolstr(rv)
  if s == nil then return nil end
  -- a second number (or numeric string: lua_isnumber) is the new expiration; without one it is kept
  return s, tonumber(rxt) or -xt
end

local function visit_empty(visitor, key, writable)
  local ok, rv, rxt
  if type(visitor) == "table" then
    local fn = visitor.visit_empty
    if type(fn) ~= "function" then return nil end
    ok, rv, rxt = raw_pcall(fn, visitor, key)
  elseif type(visitor) == "function" then
    ok, rv, rxt = raw_pcall(visitor, key, nil)
  else
    return nil
  end
  if not ok then
    if expired() then error(rv, 0) end
    return nil
  end
  if not writable or type(rxt) == "userdata" then return nil end
  local s = tolstr(rv)
  if s == nil then return nil end
  return s, tonumber(rxt)
end

local function visit_hook(visitor, name)
  if type(visitor) ~= "table" then return end
  local fn = visitor[name]
  if type(fn) == "function" then
    local ok, err = raw_pcall(fn, visitor)
    if not ok and expired() then error(err, 0) end
  end
end

---------------------------------------------------------------------------- DB

local DB = {OREADER = 1, OWRITER = 2, OCREATE = 4, OTRUNCATE = 8, OAUTOTRAN = 16, OAUTOSYNC = 32,
            ONOLOCK = 64, OTRYLOCK = 128, ONOREPAIR = 256, MSET = 0, MADD = 1, MREPLACE = 2,
            MAPPEND = 3, XNOLOCK = 1, XNOCOMP = 256, meta_ = {}}
kt.DB = DB
local methods = {}
local NOIMPL_MESSAGE = "not implemented by the embedded server"

-- The last error of a database object, as db:error() reports it (per Lua state, like Kyoto
-- Cabinet's per-thread error).
local function failed(self, code, message)
  rawset(self, "errcode_", code)
  rawset(self, "errmsg_", message)
end
local function selfdb(self, func)
  if type(self) ~= "table" then invarg(func) end
  local idx = rawget(self, "db_ptr_")
  if idx == nil then invarg(func) end
  return idx
end
-- xt argument: a number (seconds from now, negative = absolute), nil = never
local function xtarg(argc, pos, x)
  if argc >= pos and x ~= nil then return tonum(x) end
  return nil
end

local op = H.op

function methods.error(...)
  local self = ...
  if select("#", ...) ~= 1 then invarg("db_error") end
  selfdb(self, "db_error")
  local code = rawget(self, "errcode_") or 0
  local message = rawget(self, "errmsg_") or "no error"
  return Error:new(code, message)
end

local function boolop(name, cname, nargs_min, nargs_max)
  return function(...)
    local argc = select("#", ...)
    if argc < nargs_min or argc > nargs_max then invarg(cname) end
    local self, key, value, xt = ...
    local idx = selfdb(self, cname)
    key, value = tolstr(key), tolstr(value)
    if not key or not value then invarg(cname) end
    local ok, code, message = op(name, idx, key, value, xtarg(argc, 4, xt))
    if ok == nil then failed(self, code, message) return false end
    return true
  end
end
methods.set = boolop("set", "db_set", 3, 4)
methods.add = boolop("add", "db_add", 3, 4)
methods.replace = boolop("replace", "db_replace", 3, 4)
methods.append = boolop("append", "db_append", 3, 4)

-- increment and increment_double take the same arguments; only the store operation differs
local function numop(name)
  local cname = "db_" .. name
  return function(...)
    local argc = select("#", ...)
    if argc < 2 or argc > 5 then invarg(cname) end
    local self, key, num, orig, xt = ...
    local idx = selfdb(self, cname)
    key = tolstr(key)
    if not key then invarg(cname) end
    local r, code, message = op(name, idx, key, argc > 2 and tonum(num) or 0,
                                argc > 3 and tonum(orig) or 0, xtarg(argc, 5, xt))
    if r == nil then failed(self, code, message) return nil end
    return r
  end
end
methods.increment = numop("increment")
methods.increment_double = numop("increment_double")

function methods.cas(...)
  local argc = select("#", ...)
  if argc < 4 or argc > 5 then invarg("db_cas") end
  local self, key, oval, nval, xt = ...
  local idx = selfdb(self, "db_cas")
  key = tolstr(key)
  if not key then invarg("db_cas") end
  local ok, code, message = op("cas", idx, key, tolstr(oval), tolstr(nval), xtarg(argc, 5, xt))
  if ok == nil then failed(self, code, message) return false end
  return true
end

local function keyop(name, cname, on_fail)
  return function(...)
    if select("#", ...) ~= 2 then invarg(cname) end
    local self, key = ...
    local idx = selfdb(self, cname)
    key = tolstr(key)
    if not key then invarg(cname) end
    local a, b, c = op(name, idx, key)
    if a == nil then failed(self, b, c) return on_fail end
    if b ~= nil then return a, b end
    return a
  end
end
methods.remove = keyop("remove", "db_remove", false)
methods.get = keyop("get", "db_get", nil)
methods.check = keyop("check", "db_check", -1)
methods.seize = keyop("seize", "db_seize", nil)

-- a table's records as a flat {k1, v1, k2, v2, ...} with set_bulk's number formatting
local function flat_records(recs)
  local flat = {}
  for k, v in next, recs do
    local ks, vs = strbuild(k, false), strbuild(v, false)
    if ks and vs then
      flat[#flat + 1] = ks
      flat[#flat + 1] = vs
    end
  end
  return flat
end
local function key_array(keys)
  local out = {}
  for i = 1, #keys do
    local k = tolstr(keys[i])
    if k then out[#out + 1] = k end
  end
  return out
end

function methods.set_bulk(...)
  local argc = select("#", ...)
  if argc < 2 or argc > 4 then invarg("db_set_bulk") end
  local self, recs, xt, atomic = ...
  local idx = selfdb(self, "db_set_bulk")
  if type(recs) ~= "table" then invarg("db_set_bulk") end
  local n, code, message = op("set_bulk", idx, flat_records(recs), xtarg(argc, 3, xt),
                              argc <= 3 or tobool(atomic))
  if n == nil then failed(self, code, message) return -1 end
  return n
end

function methods.remove_bulk(...)
  local argc = select("#", ...)
  if argc < 2 or argc > 3 then invarg("db_remove_bulk") end
  local self, keys, atomic = ...
  local idx = selfdb(self, "db_remove_bulk")
  if type(keys) ~= "table" then invarg("db_remove_bulk") end
  local n, code, message = op("remove_bulk", idx, key_array(keys), argc <= 2 or tobool(atomic))
  if n == nil then failed(self, code, message) return -1 end
  return n
end

function methods.get_bulk(...)
  local argc = select("#", ...)
  if argc < 2 or argc > 3 then invarg("db_get_bulk") end
  local self, keys, atomic = ...
  local idx = selfdb(self, "db_get_bulk")
  if type(keys) ~= "table" then invarg("db_get_bulk") end
  local recs, code, message = op("get_bulk", idx, key_array(keys), argc <= 2 or tobool(atomic))
  if recs == nil then failed(self, code, message) return nil end
  return recs
end

local function noargop(name, cname, on_fail)
  return function(...)
    if select("#", ...) ~= 1 then invarg(cname) end
    local self = ...
    local idx = selfdb(self, cname)
    local r, code, message = op(name, idx)
    if r == nil then failed(self, code, message) return on_fail end
    return r
  end
end
methods.clear = noargop("clear", "db_clear", false)
methods.count = noargop("count", "db_count", -1)
methods.size = noargop("size", "db_size", -1)
methods.path = noargop("path", "db_path", nil)
methods.status = noargop("status", "db_status", nil)

local function matchop(name, cname)
  return function(...)
    local argc = select("#", ...)
    if argc < 2 or argc > (name == "match_similar" and 5 or 3) then invarg(cname) end
    local self, pattern, a, b, c = ...
    local idx = selfdb(self, cname)
    pattern = tolstr(pattern)
    if not pattern then invarg(cname) end
    local r, code, message
    if name == "match_similar" then
      r, code, message = op(name, idx, pattern, argc > 2 and tonum(a) or -1, argc > 3 and tobool(b),
                            argc > 4 and tonum(c) or -1)
    else
      r, code, message = op(name, idx, pattern, argc > 2 and tonum(a) or -1)
    end
    if r == nil then failed(self, code, message) return nil end
    return r
  end
end
methods.match_prefix = matchop("match_prefix", "db_match_prefix")
methods.match_regex = matchop("match_regex", "db_match_regex")
methods.match_similar = matchop("match_similar", "db_match_similar")

-- Visitor operations hold the server's loop for their whole run, so nothing else touches the
-- store between reading a record and writing what the visitor returned (ktserver locks the
-- record the same way).
local function held(fn, ...)
  H.hold_begin()
  local ok, err = raw_pcall(fn, ...)
  H.hold_end()
  if not ok then error(err, 0) end
  return err
end

local function apply_visit(idx, key, visitor, writable)
  local v, xt = op("get", idx, key)
  local nv, nxt
  if v ~= nil then
    nv, nxt = visit_full(visitor, key, v, xt, writable)
    if nv == REMOVE then op("remove", idx, key) return end
  else
    nv, nxt = visit_empty(visitor, key, writable)
  end
  if type(nv) == "string" then op("set", idx, key, nv, nxt) end
end

function methods.accept(...)
  local argc = select("#", ...)
  if argc < 3 or argc > 4 then invarg("db_accept") end
  local self, key, visitor, writable = ...
  local idx = selfdb(self, "db_accept")
  key = tolstr(key)
  if not key then invarg("db_accept") end
  if type(visitor) ~= "table" and type(visitor) ~= "function" then invarg("db_accept") end
  writable = argc <= 3 or tobool(writable)
  held(apply_visit, idx, key, visitor, writable)
  return true
end

function methods.accept_bulk(...)
  local argc = select("#", ...)
  if argc < 3 or argc > 4 then invarg("db_accept_bulk") end
  local self, keys, visitor, writable = ...
  local idx = selfdb(self, "db_accept_bulk")
  if type(keys) ~= "table" then invarg("db_accept_bulk") end
  keys = key_array(keys)
  if type(visitor) ~= "table" and type(visitor) ~= "function" then invarg("db_accept_bulk") end
  writable = argc <= 3 or tobool(writable)
  held(function()
    visit_hook(visitor, "visit_before")
    for i = 1, #keys do apply_visit(idx, keys[i], visitor, writable) end
    visit_hook(visitor, "visit_after")
  end)
  return true
end

function methods.iterate(...)
  local argc = select("#", ...)
  if argc < 2 or argc > 3 then invarg("db_iterate") end
  local self, visitor, writable = ...
  local idx = selfdb(self, "db_iterate")
  if type(visitor) ~= "table" and type(visitor) ~= "function" then invarg("db_iterate") end
  writable = argc <= 2 or tobool(writable)
  held(function()
    visit_hook(visitor, "visit_before")
    local cur = op("cur_new", idx)
    local ok = op("cur_jump", cur)
    while ok do
      local k, v, xt = op("cur_get", cur, false)
      if k == nil then break end
      local nv, nxt = visit_full(visitor, k, v, xt, writable)
      if nv == REMOVE then
        op("cur_remove", cur)                 -- moves on by itself
      else
        if type(nv) == "string" then op("cur_set_value", cur, nv, nxt, false) end
        ok = op("cur_step", cur)
      end
    end
    H.cur_free(cur)
    visit_hook(visitor, "visit_after")
  end)
  return true
end

local function file_op(cname, nmin, nmax)
  return function(...)
    local argc = select("#", ...)
    if argc < nmin or argc > nmax then invarg(cname) end
    local self = ...
    selfdb(self, cname)
    failed(self, Error.NOIMPL, NOIMPL_MESSAGE)
    return false
  end
end
methods.open = file_op("db_open", 1, 3)
methods.close = file_op("db_close", 1, 1)
methods.copy = file_op("db_copy", 2, 2)
methods.dump_snapshot = file_op("db_dump_snapshot", 2, 2)
methods.load_snapshot = file_op("db_load_snapshot", 2, 2)
methods.merge = file_op("db_merge", 2, 3)
methods.occupy = file_op("db_occupy", 1, 3)
methods.mapreduce = file_op("db_mapreduce", 3, 10)

function methods.synchronize(...)
  local argc = select("#", ...)
  if argc < 1 or argc > 3 then invarg("db_synchronize") end
  local self, _hard, proc = ...
  local idx = selfdb(self, "db_synchronize")
  if argc > 2 and (type(proc) == "table" or type(proc) == "function") then
    local path, count, size = op("path", idx), op("count", idx), op("size", idx)
    local ok, rv
    if type(proc) == "table" then
      if type(proc.process) ~= "function" then return true end
      ok, rv = raw_pcall(proc.process, proc, path, count, size)
    else
      ok, rv = raw_pcall(proc, path, count, size)
    end
    if not ok and expired() then error(rv, 0) end
    if not ok or not rv then failed(self, Error.LOGIC, "postprocessing failed") return false end
  end
  return true
end

-- Transactions hold the loop from begin to end (ktserver locks the whole database), so the
-- operations in between are atomic; aborting puts back what they changed.
function methods.begin_transaction(...)
  local argc = select("#", ...)
  if argc < 1 or argc > 2 then invarg("db_begin_transaction") end
  local self = ...
  local idx = selfdb(self, "db_begin_transaction")
  local ok, code, message = H.begin_transaction(idx)
  if ok == nil then failed(self, code, message) return false end
  return true
end

function methods.end_transaction(...)
  local argc = select("#", ...)
  if argc < 1 or argc > 2 then invarg("db_end_transaction") end
  local self, commit = ...
  local idx = selfdb(self, "db_end_transaction")
  local ok, code, message = H.end_transaction(idx, argc <= 1 or tobool(commit))
  if ok == nil then failed(self, code, message) return false end
  return true
end

function methods.transaction(...)
  local argc = select("#", ...)
  if argc < 2 or argc > 3 then invarg("db_transaction") end
  local self, proc, hard = ...
  selfdb(self, "db_transaction")
  self:begin_transaction(tobool(hard))
  local ok, rv = raw_pcall(proc)
  local commit = ok and tobool(rv)
  local done = self:end_transaction(commit)
  if not ok then error(rv, 0) end
  return done
end

function methods.cursor(...)
  local self = ...
  selfdb(self, "db_cursor")
  return kt.Cursor:new(self)
end

function methods.cursor_process(...)
  local argc = select("#", ...)
  local self, proc = ...
  if argc ~= 2 then invarg("db_cursor_process") end
  selfdb(self, "db_cursor_process")
  local cur = kt.Cursor:new(self)
  local ok, err = raw_pcall(proc, cur)
  if rawget(cur, "cur_ptr_") ~= nil then cur:disable() end
  if not ok then error(err, 0) end
  return nil
end

function methods.pairs(...)
  local self = ...
  selfdb(self, "db_pairs")
  local cur = kt.Cursor:new(self)
  cur:jump()
  return cur, self, nil
end

DB.meta_.__index = function(...)
  local self, key = ...
  if select("#", ...) ~= 2 or type(self) ~= "table" then invarg("db_index") end
  local m = methods[key]
  if m ~= nil then return m end
  local idx = rawget(self, "db_ptr_")
  key = tolstr(key)
  if idx == nil or not key then invarg("db_index") end
  local v, code, message = op("get", idx, key)
  if v == nil then failed(self, code, message) return nil end
  return v
end
DB.meta_.__newindex = function(...)
  local self, key, value = ...
  if select("#", ...) ~= 3 or type(self) ~= "table" then invarg("db_newindex") end
  local idx = rawget(self, "db_ptr_")
  key = tolstr(key)
  if idx == nil or not key then invarg("db_newindex") end
  value = tolstr(value)
  local ok, code, message
  if value then ok, code, message = op("set", idx, key, value, nil)
  else ok, code, message = op("remove", idx, key) end
  if ok == nil then failed(self, code, message) return false end
  return true
end
DB.meta_.__tostring = function(...)
  local self = ...
  local idx = selfdb(self, "db_tostring")
  return format("%s: %d: %d", op("path", idx) or "(nil)", op("count", idx), op("size", idx))
end

function DB.new(...)
  local argc = select("#", ...)
  local cls, ptr = ...
  if argc < 1 or type(cls) ~= "table" or argc > 2 then invarg("db_new") end
  if type(ptr) ~= "number" then
    error("db_new: standalone databases are " .. NOIMPL_MESSAGE, 0)
  end
  local obj = {db_ptr_ = ptr, err_ = Error, cur_ = kt.Cursor}
  return setmetatable(obj, cls.meta_)
end
function DB.new_ptr() error("db_new_ptr: " .. NOIMPL_MESSAGE, 0) end
function DB.delete_ptr() error("db_delete_ptr: " .. NOIMPL_MESSAGE, 0) end
function DB.process() error("db_process: " .. NOIMPL_MESSAGE, 0) end
kt.FileProcessor = {meta_ = {}}
function kt.FileProcessor.new(...)
  if select("#", ...) ~= 1 or type((...)) ~= "table" then invarg("fproc_new") end
  return setmetatable({process = function() return true end}, (...).meta_)
end

---------------------------------------------------------------------------- Cursor

local Cursor = {meta_ = {}}
kt.Cursor = Cursor
local cmethods = {}

local function selfcur(self, func)
  if type(self) ~= "table" then invarg(func) end
  local id = rawget(self, "cur_ptr_")
  if id == nil then invarg(func) end
  return id
end
local function curfail(self, code, message) failed(rawget(self, "db_"), code, message) end

function Cursor.new(...)
  local cls, db = ...
  if select("#", ...) ~= 2 or type(cls) ~= "table" or type(db) ~= "table" then invarg("cur_new") end
  local idx = rawget(db, "db_ptr_")
  if idx == nil then invarg("cur_new") end
  local id = op("cur_new", idx)
  -- a userdata whose collection frees the store cursor (tables have no __gc in Lua 5.1)
  local gc = newproxy(true)
  getmetatable(gc).__gc = function() H.cur_free(id) end
  local obj = {cur_ptr_ = id, db_ = db, gc_ = gc}
  for k, f in next, cmethods do obj[k] = f end
  return setmetatable(obj, cls.meta_)
end

function cmethods.disable(...)
  local self = ...
  if select("#", ...) ~= 1 then invarg("cur_disable") end
  local id = selfcur(self, "cur_disable")
  H.cur_free(id)
  self.cur_ptr_ = nil
  return nil
end

local function curmove(name, cname, takes_key)
  return function(...)
    local argc = select("#", ...)
    if argc < 1 or argc > (takes_key and 2 or 1) then invarg(cname) end
    local self, key = ...
    local id = selfcur(self, cname)
    if argc > 1 then
      key = tolstr(key)
      if not key then invarg(cname) end
    else
      key = nil
    end
    local ok, code, message = op(name, id, key)
    if ok == nil then curfail(self, code, message) return false end
    return true
  end
end
cmethods.jump = curmove("cur_jump", "cur_jump", true)
cmethods.jump_back = curmove("cur_jump_back", "cur_jump_back", true)
cmethods.step = curmove("cur_step", "cur_step", false)
cmethods.step_back = curmove("cur_step_back", "cur_step_back", false)

function cmethods.get(...)
  local argc = select("#", ...)
  if argc < 1 or argc > 2 then invarg("cur_get") end
  local self, step = ...
  local id = selfcur(self, "cur_get")
  local k, v, xt = op("cur_get", id, argc > 1 and tobool(step))
  if k == nil then curfail(self, v, xt) return nil end
  return k, v, xt
end
function cmethods.get_key(...)
  local argc = select("#", ...)
  if argc < 1 or argc > 2 then invarg("cur_get_key") end
  local self, step = ...
  local id = selfcur(self, "cur_get_key")
  local k, v, xt = op("cur_get", id, argc > 1 and tobool(step))
  if k == nil then curfail(self, v, xt) return nil end
  return k
end
function cmethods.get_value(...)
  local argc = select("#", ...)
  if argc < 1 or argc > 2 then invarg("cur_get_value") end
  local self, step = ...
  local id = selfcur(self, "cur_get_value")
  local k, v, xt = op("cur_get", id, argc > 1 and tobool(step))
  if k == nil then curfail(self, v, xt) return nil end
  return v
end
function cmethods.seize(...)
  if select("#", ...) ~= 1 then invarg("cur_seize") end
  local self = ...
  local id = selfcur(self, "cur_seize")
  local k, v, xt = op("cur_seize", id)
  if k == nil then curfail(self, v, xt) return nil end
  return k, v, xt
end
function cmethods.remove(...)
  if select("#", ...) ~= 1 then invarg("cur_remove") end
  local self = ...
  local id = selfcur(self, "cur_remove")
  local ok, code, message = op("cur_remove", id)
  if ok == nil then curfail(self, code, message) return false end
  return true
end
function cmethods.set_value(...)
  local argc = select("#", ...)
  if argc < 2 or argc > 4 then invarg("cur_set_value") end
  local self, value, xt, step = ...
  local id = selfcur(self, "cur_set_value")
  value = tolstr(value)
  if not value or #value == 0 then invarg("cur_set_value") end
  -- ktserver's cur_set_value passes its step and xt arguments to TimedDB::Cursor::set_value
  -- swapped: the expiration becomes `step` seconds from now (0 or 1), and the cursor steps
  -- unless xt is 0. Scripts written against the real server see exactly that, so do the same.
  local xtnum = (argc > 2 and xt ~= nil) and tonum(xt) or 1 / 0
  local ok, code, message = op("cur_set_value", id, value, (argc > 3 and tobool(step)) and 1 or 0, xtnum ~= 0)
  if ok == nil then curfail(self, code, message) return false end
  return true
end
function cmethods.accept(...)
  local argc = select("#", ...)
  if argc < 2 or argc > 4 then invarg("cur_accept") end
  local self, visitor, writable, step = ...
  local id = selfcur(self, "cur_accept")
  if type(visitor) ~= "table" and type(visitor) ~= "function" then invarg("cur_accept") end
  writable = argc <= 2 or tobool(writable)
  step = argc > 3 and tobool(step)
  return held(function()
    local k, v, xt = op("cur_get", id, false)
    if k == nil then curfail(self, v, xt) return false end
    local nv, nxt = visit_full(visitor, k, v, xt, writable)
    if nv == REMOVE then
      op("cur_remove", id)
    elseif type(nv) == "string" then
      op("cur_set_value", id, nv, nxt, step)
    elseif step then
      op("cur_step", id)
    end
    return true
  end)
end
function cmethods.db(...)
  local self = ...
  if select("#", ...) ~= 1 then invarg("cur_db") end
  selfcur(self, "cur_db")
  return rawget(self, "db_")
end
function cmethods.error(...)
  local self = ...
  if select("#", ...) ~= 1 then invarg("cur_error") end
  selfcur(self, "cur_error")
  return rawget(self, "db_"):error()
end

Cursor.meta_.__tostring = function(...)
  local self = ...
  if select("#", ...) ~= 1 or type(self) ~= "table" then invarg("cur_tostring") end
  local id = rawget(self, "cur_ptr_")
  if id == nil then return "(disabled)" end
  local path = op("path", rawget(rawget(self, "db_"), "db_ptr_")) or "(nil)"
  local k = op("cur_get", id, false)
  return cstr(path .. ": " .. (k or "(nil)"))  -- lua_pushstring: the text ends at a NUL
end
Cursor.meta_.__call = function(...)
  local self = ...
  if select("#", ...) < 1 or type(self) ~= "table" then invarg("cur_call") end
  local id = rawget(self, "cur_ptr_")
  if id == nil then invarg("cur_call") end
  local k, v = op("cur_get", id, true)
  if k == nil then return nil end
  return k, v
end

---------------------------------------------------------------------------- databases

local dbs = {}
for i = 1, H.dbcount do
  dbs[i] = DB:new(i - 1)
end
for name, i in next, H.dbnames do dbs[name] = dbs[i + 1] end
kt.dbs = dbs
kt.db = dbs[1]

---------------------------------------------------------------------------- calling procedures

-- ScriptProcessor::call: returns the return code and the output map (formatted like
-- StringBuilder), or RVEINTERNAL and the error message.
local function to_integer(rv)  -- lua_tointeger: numbers and numeric strings, truncated
  rv = tonumber(rv)
  if rv == nil or rv ~= rv then return 0 end
  if rv >= 0 then return floor(rv) end
  return -floor(-rv)
end
function __kt_call__(name, inmap)
  local fn = _G[name]
  if type(fn) ~= "function" then return kt.RVENOIMPL, nil end
  local outmap = {}
  local ok, rv = raw_pcall(fn, inmap, outmap)
  if not ok then return -1, tostring(rv) end
  local out = {}
  for k, v in next, outmap do
    local ks, vs = strbuild(k, true), strbuild(v, true)
    if ks and vs then out[ks] = vs end
  end
  return to_integer(rv), out
end

return kt

-- play_script procedures for a real ktserver run as the tests' oracle (-scr this file).
-- They behave like the script the conformance transcripts were recorded with
-- (tests/conformance/README.md) and like kyototycoon.server.scripts.

kt = __kyototycoon__

-- echo: every input record is copied to the output
function echo(inmap, outmap)
   for key, value in pairs(inmap) do
      outmap[key] = value
   end
   return kt.RVSUCCESS
end

-- set: store key -> value (optional xt) in the first database
function set(inmap, outmap)
   local key = inmap.key
   local value = inmap.value
   if not key or not value then
      return kt.RVEINVALID
   end
   local xt = inmap.xt and tonumber(inmap.xt) or nil
   if not kt.db:set(key, value, xt) then
      return kt.RVEINTERNAL
   end
   return kt.RVSUCCESS
end

-- get: value and xt of key; a logical failure when it is missing
function get(inmap, outmap)
   local key = inmap.key
   if not key then
      return kt.RVEINVALID
   end
   local value, xt = kt.db:get(key)
   if not value then
      return kt.RVELOGIC
   end
   outmap.value = value
   outmap.xt = string.format("%d", xt)
   return kt.RVSUCCESS
end

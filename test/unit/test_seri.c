/* test_seri: Check tests of daemon/lua/seri.c against wire-format.md Part A. The spec's vector
 * files are read at run time from $SKYJET_VECTORS (default test/vectors; run from the repo root).
 * Each test gets a fresh lua_State with the module as `seri` and the Lua helpers of the prelude
 * below (value-notation parser, exact deep equality, random values); tests run forked by Check. */
#include "seri.h"

#include <check.h>
#include <lauxlib.h>
#include <lualib.h>
#include <malloc.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_LSAN 1
#endif
#endif
#ifdef HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#endif

/* ---- the vector files ---- */

struct vec {
    const char *name, *desc, *field; /* the three TAB-separated fields */
    unsigned char *bytes;            /* hex field decoded; NULL for "-" and "len=" fields */
    size_t len;                      /* length of bytes, or N of "len=N sha256=H" */
    int hashed;
    char sha[65];
};

struct vecfile {
    const char *file;
    struct vec *v;
    int n;   /* lines, or -1 when the file could not be read */
    int bad; /* malformed lines */
};

static struct vecfile vf_pack = {"seri-pack.txt", NULL, 0, 0};
static struct vecfile vf_errors = {"seri-pack-errors.txt", NULL, 0, 0};
static struct vecfile vf_unpack = {"seri-unpack.txt", NULL, 0, 0};
static const struct vec *hexvecs[1024]; /* every plain-hex line of the three files */
static int n_hexvecs;

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int parse_field(struct vec *v)
{
    if (strcmp(v->field, "-") == 0)
        return 0;
    if (strncmp(v->field, "len=", 4) == 0) {
        v->hashed = 1;
        return sscanf(v->field, "len=%zu sha256=%64[0-9a-f]", &v->len, v->sha) == 2 &&
                       strlen(v->sha) == 64
                   ? 0
                   : -1;
    }
    size_t n = strlen(v->field);
    if (n % 2)
        return -1;
    v->len = n / 2;
    v->bytes = malloc(v->len + 1);
    for (size_t i = 0; i < v->len; i++) {
        int hi = hexval(v->field[2 * i]), lo = hexval(v->field[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        v->bytes[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

static void load_vectors(struct vecfile *f)
{
    const char *dir = getenv("SKYJET_VECTORS");
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "test/vectors", f->file);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        f->n = -1;
        return;
    }
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    rewind(fp);
    char *text = malloc((size_t)size + 1);
    size_t got = fread(text, 1, (size_t)size, fp);
    fclose(fp);
    text[got] = '\0';
    f->v = calloc(got / 2 + 1, sizeof *f->v);
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (*line == '\0' || *line == '\r')
            continue;
        line[strcspn(line, "\r")] = '\0';
        struct vec *v = &f->v[f->n];
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        if (!t2 || strchr(t2 + 1, '\t')) {
            f->bad++;
            continue;
        }
        *t1 = *t2 = '\0';
        v->name = line;
        v->desc = t1 + 1;
        v->field = t2 + 1;
        if (parse_field(v) < 0) {
            f->bad++;
            continue;
        }
        if (v->bytes && n_hexvecs < (int)(sizeof hexvecs / sizeof hexvecs[0]))
            hexvecs[n_hexvecs++] = v;
        f->n++;
    }
}

/* ---- Lua state with the module and the helpers ---- */

static const char prelude[] =
    "local ffi = require('ffi')\n"
    "skynet = { pack = seri.packstring, unpack = seri.unpack }\n"
    "MAX_DEPTH = 64\n"
    "\n"
    "function pack2(...) return { n = select('#', ...), ... } end\n"
    "function hex(s)\n"
    "  return (s:gsub('.', function(c) return ('%02x'):format(c:byte()) end))\n"
    "end\n"
    "function unhex(h)\n"
    "  return (h:gsub('%x%x', function(x) return string.char(tonumber(x, 16)) end))\n"
    "end\n"
    "-- n nested tables; inner is the innermost one\n"
    "function nest(n, inner) local t = inner for _ = 2, n do t = { t } end return t end\n"
    "\n"
    "-- What the decoder returns for an int64_t/uint64_t cdata: a number when a double\n"
    "-- holds it exactly, else the int64_t.\n"
    "function norm(v)\n"
    "  if type(v) ~= 'cdata' then return v end\n"
    "  local i = ffi.new('int64_t', v)\n"
    "  local d = tonumber(i)\n"
    "  if d >= -2^63 and d < 2^63 and ffi.new('int64_t', d) == i then return d end\n"
    "  return i\n"
    "end\n"
    "\n"
    "-- Sentinels of the value notation: any light userdata; a string known by length only.\n"
    "LUD = setmetatable({}, { __tostring = function() return 'lightuserdata' end })\n"
    "LONG = {}\n"
    "-- Tables from truncated notation ('...(truncated)') match as a subset.\n"
    "local partial = setmetatable({}, { __mode = 'k' })\n"
    "\n"
    "local function show(v)\n"
    "  if type(v) == 'string' then\n"
    "    return ('str%d:%q'):format(#v, #v > 40 and v:sub(1, 40) .. '...' or v)\n"
    "  end\n"
    "  if type(v) == 'number' then return ('number:%.17g'):format(v) end\n"
    "  return type(v) .. ':' .. tostring(v)\n"
    "end\n"
    "\n"
    "local deq\n"
    "local function findkey(t, k) -- found, key of t\n"
    "  if type(k) ~= 'table' and type(k) ~= 'cdata' then return rawget(t, k) ~= nil, k end\n"
    "  for ka in pairs(t) do if deq(ka, k) then return true, ka end end\n"
    "  return false\n"
    "end\n"
    "-- The pairs the encoder sees: LuaJIT's pairs ignores __pairs, the encoder does not.\n"
    "local function entries(t)\n"
    "  local mt = getmetatable(t)\n"
    "  if mt and mt.__pairs then return mt.__pairs(t) end\n"
    "  return next, t, nil\n"
    "end\n"
    "\n"
    "-- Exact equality of a decoded value a with an expected value b: same Lua type,\n"
    "-- numbers equal in sign (-0.0) and NaN-ness, int64 cdata equal, tables equal entry by\n"
    "-- entry. On a mismatch the second result is the path to it and what differs,\n"
    "-- e.g. '[str1:\"x\"][1]: expected ...'.\n"
    "function deq(a, b)\n"
    "  if b == LUD then\n"
    "    return type(a) == 'userdata', ': expected lightuserdata, got ' .. show(a)\n"
    "  end\n"
    "  if getmetatable(b) == LONG then\n"
    "    if type(a) == 'string' and #a == b.n then return true end\n"
    "    return false, (': expected a %d-byte string, got %s'):format(b.n, show(a))\n"
    "  end\n"
    "  b = norm(b)\n"
    "  local same\n"
    "  if type(a) ~= type(b) then\n"
    "    same = false\n"
    "  elseif type(a) == 'number' then\n"
    "    same = (a ~= a and b ~= b) or (a == b and (a ~= 0 or 1 / a == 1 / b))\n"
    "  elseif type(a) == 'cdata' then\n"
    "    same = ffi.istype('int64_t', a) and a == b\n"
    "  elseif type(a) == 'table' then\n"
    "    local na, nb = 0, 0\n"
    "    for _ in pairs(a) do na = na + 1 end\n"
    "    for k, v in entries(b) do\n"
    "      nb = nb + 1\n"
    "      local found, ka = findkey(a, norm(k))\n"
    "      if not found then return false, ': key ' .. show(k) .. ' missing' end\n"
    "      local ok, why = deq(a[ka], v)\n"
    "      if not ok then return false, '[' .. show(k) .. ']' .. why end\n"
    "    end\n"
    "    if na == nb or partial[b] then return true end\n"
    "    return false, (': %d entries, expected %d'):format(na, nb)\n"
    "  else\n"
    "    same = a == b\n"
    "  end\n"
    "  if same then return true end\n"
    "  return false, (': expected %s, got %s'):format(show(b), show(a))\n"
    "end\n"
    "\n"
    "function deq_all(got, want)\n"
    "  if got.n ~= want.n then\n"
    "    return false, ('%d values, expected %d'):format(got.n, want.n)\n"
    "  end\n"
    "  for i = 1, want.n do\n"
    "    local ok, why = deq(got[i], want[i])\n"
    "    if not ok then return false, 'value ' .. i .. why end\n"
    "  end\n"
    "  return true\n"
    "end\n"
    "\n"
    "-- Decimal text to int64, exactly, then as the decoder would return it.\n"
    "local function int_of(m)\n"
    "  local neg, v = m:sub(1, 1) == '-', ffi.new('int64_t', 0)\n"
    "  for d in m:gmatch('%d') do v = v * 10 + (neg and -tonumber(d) or tonumber(d)) end\n"
    "  return norm(v)\n"
    "end\n"
    "\n"
    "-- Parse the vectors' value notation (vectors/README.md) into a pack2-style list.\n"
    "function parse_values(s)\n"
    "  local cut = s:find('...(truncated)', 1, true)\n"
    "  local truncated, stopped, pos = cut ~= nil, false, 1\n"
    "  if cut then s = s:sub(1, cut - 1) end\n"
    "  local function expect(lit)\n"
    "    if s:sub(pos, pos + #lit - 1) ~= lit then\n"
    "      error(('expected %q at %d of %s'):format(lit, pos, s))\n"
    "    end\n"
    "    pos = pos + #lit\n"
    "  end\n"
    "  local value\n"
    "  local function tbl()\n"
    "    expect('{')\n"
    "    local t = {}\n"
    "    if s:sub(pos, pos) == '}' then pos = pos + 1 return t end\n"
    "    while true do\n"
    "      local ok, k, v = pcall(function()\n"
    "        expect('[') local k = value() expect(']=') return k, value()\n"
    "      end)\n"
    "      if not ok and not truncated then error(k, 0) end\n"
    "      if ok then t[k] = v end\n"
    "      if not ok or stopped then partial[t], stopped = true, true return t end\n"
    "      if s:sub(pos, pos) ~= ',' then break end\n"
    "      pos = pos + 1\n"
    "    end\n"
    "    expect('}')\n"
    "    return t\n"
    "  end\n"
    "  local words = { ['nil'] = false, ['true'] = true, ['false'] = false,\n"
    "    lightuserdata = LUD }\n"
    "  value = function()\n"
    "    for word, v in pairs(words) do\n"
    "      if s:find('^' .. word, pos) then\n"
    "        pos = pos + #word\n"
    "        if word == 'nil' then return nil end\n"
    "        return v\n"
    "      end\n"
    "    end\n"
    "    local m = s:match('^int:(%-?%d+)', pos)\n"
    "    if m then pos = pos + 4 + #m return int_of(m) end\n"
    "    m = s:match('^float:([%-%+%.%w]+)', pos)\n"
    "    if m then\n"
    "      pos = pos + 6 + #m\n"
    "      return m == '-0' and -0.0 or assert(tonumber(m), m)\n"
    "    end\n"
    "    local n, p = s:match('^str(%d+):()', pos)\n"
    "    if n then\n"
    "      n, pos = tonumber(n), p\n"
    "      if s:sub(pos, pos) == '\"' then\n"
    "        local str = s:sub(pos + 1, pos + n)\n"
    "        pos = pos + 1 + n\n"
    "        expect('\"')\n"
    "        return str\n"
    "      elseif s:find('^hex:', pos) then\n"
    "        local h = s:sub(pos + 4, pos + 3 + 2 * n)\n"
    "        pos = pos + 4 + 2 * n\n"
    "        return unhex(h)\n"
    "      end\n"
    "      expect('<long>')\n"
    "      return setmetatable({ n = n }, LONG)\n"
    "    end\n"
    "    if s:sub(pos, pos) == '{' then return tbl() end\n"
    "    error(('cannot parse at %d of %s'):format(pos, s))\n"
    "  end\n"
    "  if s:find('^%(no values%)') then return { n = 0 } end\n"
    "  local vals = { n = 0 }\n"
    "  repeat\n"
    "    vals.n = vals.n + 1\n"
    "    vals[vals.n] = value()\n"
    "    local more = not stopped and s:sub(pos, pos + 2) == ' | '\n"
    "    if more then pos = pos + 3 end\n"
    "  until not more\n"
    "  local rest = s:sub(pos)\n"
    "  if not stopped and rest ~= '' and not rest:find('^ %[') and not rest:find('^;') then\n"
    "    error('trailing text: ' .. rest)\n"
    "  end\n"
    "  return vals\n"
    "end\n"
    "\n"
    "-- A description's skynet.pack(...) expression as a LuaJIT chunk returning its result.\n"
    "function pack_chunk(expr)\n"
    "  expr = expr:gsub('math%.maxinteger', '0x7fffffffffffffffLL')\n"
    "  expr = expr:gsub('math%.mininteger', '(-0x7fffffffffffffffLL-1)')\n"
    "  expr = expr:gsub('0x20000000000001%f[^%x]', '0x20000000000001LL')\n"
    "  expr = expr:gsub('<lightuserdata>', 'lud')\n"
    "  local n, inner = expr:match('^skynet%.pack%((%d+) nested tables, innermost (%b{})%)')\n"
    "  if n then return ('return skynet.pack(nest(%s, %s))'):format(n, inner) end\n"
    "  local a, n2, in2 =\n"
    "    expr:match('^skynet%.pack%(([^,]+), <(%d+) nested, innermost (%b{})>%)')\n"
    "  if a then return ('return skynet.pack(%s, nest(%s, %s))'):format(a, n2, in2) end\n"
    "  local stmts = expr:match('^skynet%.pack%((local .*)%)$')\n"
    "  if stmts then return stmts .. ' return skynet.pack(t)' end\n"
    "  return 'return ' .. expr\n"
    "end\n"
    "\n"
    "function split_desc(desc) return desc:match('^(.-) ==> (.*)$') end\n"
    "function decode_only(desc)\n"
    "  return desc:find('decoding only', 1, true) or desc:find('decode-only', 1, true)\n"
    "end\n"
    "\n"
    "-- The arguments a description passes to skynet.pack, as a pack2 list.\n"
    "function eval_args(expr)\n"
    "  local saved = skynet.pack\n"
    "  skynet.pack = pack2\n"
    "  local ok, r = pcall(assert(loadstring(pack_chunk(expr))))\n"
    "  skynet.pack = saved\n"
    "  assert(ok, r)\n"
    "  return r\n"
    "end\n"
    "\n"
    "function encode_expr(expr) return assert(loadstring(pack_chunk(expr)))() end\n"
    "\n"
    "-- seri-pack.txt: our encoding equals the vector bytes (or length and digest).\n"
    "function check_pack_encodes(desc, want_hex, hlen, hsha)\n"
    "  local expr = split_desc(desc)\n"
    "  local ok, s = pcall(encode_expr, expr)\n"
    "  if not ok then return false, 'pack raised ' .. tostring(s) end\n"
    "  if hlen then\n"
    "    local sha = sha256hex(s)\n"
    "    return #s == hlen and sha == hsha, ('got %d bytes, sha256 %s'):format(#s, sha)\n"
    "  end\n"
    "  if desc:find('another valid encoding', 1, true) then\n"
    "    local theirs = pack2(seri.unpack(unhex(want_hex)))\n"
    "    local ok2, why = deq_all(pack2(seri.unpack(s)), theirs)\n"
    "    return ok2, 'decoded differently from the vector: ' .. tostring(why)\n"
    "  end\n"
    "  return hex(s) == want_hex, 'got ' .. hex(s)\n"
    "end\n"
    "\n"
    "-- seri-pack.txt: the vector bytes decode to the described values and to the packed\n"
    "-- arguments.\n"
    "function check_pack_decodes(desc, want_hex, hlen, hsha)\n"
    "  local expr, outcome = split_desc(desc)\n"
    "  local bytes = want_hex and unhex(want_hex) or encode_expr(expr)\n"
    "  if not want_hex and (#bytes ~= hlen or sha256hex(bytes) ~= hsha) then\n"
    "    return false, 'cannot rebuild the vector bytes'\n"
    "  end\n"
    "  local cok, cerr = check(bytes, true)\n"
    "  if not cok then return false, 'seri_check rejects: ' .. cerr end\n"
    "  local r = pack2(pcall(seri.unpack, bytes))\n"
    "  if not r[1] then return false, 'unpack raised ' .. tostring(r[2]) end\n"
    "  local got = pack2(unpack(r, 2, r.n))\n"
    "  local ok, why = deq_all(got, parse_values(outcome))\n"
    "  if not ok then return false, 'against the description: ' .. why end\n"
    "  if decode_only(desc) then return true end\n"
    "  ok, why = deq_all(got, eval_args(expr))\n"
    "  return ok, 'against the packed value: ' .. tostring(why)\n"
    "end\n"
    "\n"
    "-- seri-pack-errors.txt: the recorded error, or the recorded bytes.\n"
    "function check_pack_error_line(desc, want_hex)\n"
    "  local expr, outcome = split_desc(desc)\n"
    "  local r = pack2(pcall(encode_expr, expr))\n"
    "  if outcome:find('^ERROR ') then\n"
    "    local want = outcome:sub(7)\n"
    "    local why = ('expected error %q, got %s'):format(want, tostring(r[2]))\n"
    "    return not r[1] and r[2] == want, why\n"
    "  end\n"
    "  if not r[1] then return false, 'raised ' .. tostring(r[2]) end\n"
    "  return hex(r[2]) == want_hex, 'got ' .. hex(r[2])\n"
    "end\n"
    "\n"
    "local function nesting(v)\n"
    "  local d = 0\n"
    "  while type(v) == 'table' do d, v = d + 1, v[1] end\n"
    "  return d\n"
    "end\n"
    "\n"
    "-- seri-unpack.txt: the recorded outcome, except where skyjet must be stricter (A.8).\n"
    "function check_unpack_line(desc, bytes, hlen, hsha)\n"
    "  if not bytes then\n"
    "    local a, b = desc:match('of (%d+) bytes 0e, then 06 00, then (%d+) bytes 00')\n"
    "    if not a then return false, 'no bytes and no recipe' end\n"
    "    bytes = string.char(14):rep(a) .. string.char(6, 0) .. string.char(0):rep(b)\n"
    "    if #bytes ~= hlen or sha256hex(bytes) ~= hsha then\n"
    "      return false, 'recipe does not match the digest'\n"
    "    end\n"
    "  end\n"
    "  local outcome = desc:match(' ==> (.*)$')\n"
    "  local r = pack2(pcall(seri.unpack, bytes))\n"
    "  local cok, cerr = check(bytes, true)\n"
    "  if cok ~= r[1] then\n"
    "    return false, ('seri_check says %s (%s), unpack says %s'):format(tostring(cok),\n"
    "      tostring(cerr), tostring(r[2]))\n"
    "  end\n"
    "  local depth = outcome:match('^OK depth=(%d+)')\n"
    "  if depth and tonumber(depth) > MAX_DEPTH then\n"
    "    -- A.8: skyjet bounds the nesting where Skynet does not\n"
    "    outcome = 'ERROR Invalid serialize stream: tables nested deeper than 64'\n"
    "  end\n"
    "  if outcome:find('^ERROR ') then\n"
    "    local want = outcome:sub(7)\n"
    "    if r[1] then return false, 'decoded, expected error ' .. want end\n"
    "    if want == 'table index is NaN' then return r[2] == want, 'raised ' .. r[2] end\n"
    "    -- Skynet's own texts differ from ours; ours only share the prefix\n"
    "    local prefix = 'Invalid serialize stream'\n"
    "    if want:find('^Invalid serialize stream:') then prefix = want end\n"
    "    return r[2]:sub(1, #prefix) == prefix, 'raised ' .. r[2]\n"
    "  end\n"
    "  if not r[1] then return false, 'raised ' .. tostring(r[2]) end\n"
    "  if depth then\n"
    "    return r.n == 2 and nesting(r[2]) == tonumber(depth), 'nesting ' .. nesting(r[2])\n"
    "  end\n"
    "  local n, rest = outcome:match('^OK n=(%d+) ?(.*)$')\n"
    "  local want = parse_values(rest == '' and '(no values)' or rest)\n"
    "  if want.n ~= tonumber(n) then\n"
    "    return false, 'notation parse gave ' .. want.n .. ' values'\n"
    "  end\n"
    "  return deq_all(pack2(unpack(r, 2, r.n)), want)\n"
    "end\n"
    "\n"
    "-- Small helpers for the behaviour tests.\n"
    "function packs_to(h, ...)\n"
    "  local ok, s = pcall(seri.packstring, ...)\n"
    "  if not ok then return false, 'raised ' .. tostring(s) end\n"
    "  return hex(s) == h, 'packed to ' .. hex(s) .. ', expected ' .. h\n"
    "end\n"
    "function unpacks_to(h, ...)\n"
    "  local r = pack2(pcall(seri.unpack, unhex(h)))\n"
    "  if not r[1] then return false, 'raised ' .. tostring(r[2]) end\n"
    "  return deq_all(pack2(unpack(r, 2, r.n)), pack2(...))\n"
    "end\n"
    "function raises(want, f, ...)\n"
    "  local ok, e = pcall(f, ...)\n"
    "  if ok then return false, 'did not raise' end\n"
    "  return tostring(e):sub(1, #want) == want, 'raised: ' .. tostring(e)\n"
    "end\n"
    "function roundtrips(...)\n"
    "  local want = pack2(...)\n"
    "  local s = seri.packstring(...)\n"
    "  local ok, why = check(s, true)\n"
    "  if not ok then return false, 'seri_check rejects: ' .. why end\n"
    "  ok, why = deq_all(pack2(seri.unpack(s)), want)\n"
    "  if not ok then return false, 'packstring: ' .. why end\n"
    "  local p, size = seri.pack(...) -- the malloc'd form, as services send it\n"
    "  if size ~= #s then cfree(p) return false, 'pack and packstring sizes differ' end\n"
    "  local got = pack2(pcall(seri.unpack, p, size))\n"
    "  cfree(p)\n"
    "  if not got[1] then return false, 'unpack(ptr, size) raised ' .. tostring(got[2]) end\n"
    "  return deq_all(pack2(unpack(got, 2, got.n)), want)\n"
    "end\n"
    "\n"
    "-- Random values for round trips: nested tables, binary strings, every number class,\n"
    "-- int64 cdata.\n"
    "local specials = { 0, -0.0, 1 / 0, -1 / 0, 0 / 0, 2^53, -2^53, 2^53 - 1, 2^63, -2^63,\n"
    "  2^62, 2^64, 0.5, -1, 255, 256, 65535, 65536, 2^31 - 1, 2^31, -2^31, -2^31 - 1, 2^32,\n"
    "  1e308, 5e-324, -1e-300 }\n"
    "local function rnd_number()\n"
    "  local r = math.random(5)\n"
    "  if r == 1 then return specials[math.random(#specials)] end\n"
    "  if r == 2 then return math.random(-70000, 70000) end\n"
    "  if r == 3 then return (math.random() - 0.5) * 10 ^ math.random(-20, 20) end\n"
    "  local int64 = ffi.new('int64_t', 0)\n"
    "  if r == 4 then return (int64 + 2^53) * (math.random(2) * 2 - 3) + math.random(-2, 2) end\n"
    "  return (int64 + math.random(0, 2^31 - 1)) * 2^32 + math.random(0, 2^32 - 1) -\n"
    "         (math.random(2) == 1 and ffi.new('int64_t', 2^62) * 2 or 0)\n"
    "end\n"
    "local pool -- random bytes, NULs included; strings are slices of it\n"
    "local function rnd_string()\n"
    "  if not pool then\n"
    "    local t = {}\n"
    "    for i = 1, 4096 do t[i] = string.char(math.random(0, 255)) end\n"
    "    pool = table.concat(t):rep(18)\n"
    "  end\n"
    "  local r, n = math.random(400)\n"
    "  if r <= 250 then\n"
    "    n = math.random(0, 40)\n"
    "  elseif r < 400 then\n"
    "    n = math.random(0, 400)\n"
    "  else\n"
    "    n = math.random(65530, 70000)\n"
    "  end\n"
    "  local at = math.random(1, #pool - n)\n"
    "  return pool:sub(at, at + n - 1)\n"
    "end\n"
    "local function rnd_key()\n"
    "  local r = math.random(4)\n"
    "  if r == 1 then return math.random(2) == 1 end\n"
    "  if r == 2 then\n"
    "    local v\n"
    "    repeat v = norm(rnd_number()) until v == v and type(v) == 'number'\n"
    "    return v\n"
    "  end\n"
    "  return rnd_string():sub(1, 20)\n"
    "end\n"
    "function random_value(depth)\n"
    "  local r = math.random(depth >= 5 and 4 or 7)\n"
    "  if r == 1 then return rnd_number() end\n"
    "  if r == 2 then return rnd_string() end\n"
    "  if r == 3 then return math.random(2) == 1 end\n"
    "  if r == 4 then return nil end\n"
    "  local t = {} -- about two child tables per table, so values stay small\n"
    "  for i = 1, math.random(0, depth == 0 and 40 or 5) do\n"
    "    if math.random(10) > 1 then t[i] = random_value(depth + 1) end\n"
    "  end\n"
    "  for _ = 1, math.random(0, depth == 0 and 8 or 3) do\n"
    "    t[rnd_key()] = random_value(depth + 1)\n"
    "  end\n"
    "  return t\n"
    "end\n";

static int l_sha256hex(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    unsigned char md[SHA256_DIGEST_LENGTH];
    char out[2 * SHA256_DIGEST_LENGTH + 1];
    SHA256((const unsigned char *)s, n, md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    lua_pushstring(L, out);
    return 1;
}

/* check(s, allow_pointer) -> true | false, reason: seri_check on a string */
static int l_check(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    char err[256];
    if (seri_check(s, n, lua_toboolean(L, 2), err, sizeof err) == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_pushstring(L, err);
    return 2;
}

static int l_cfree(lua_State *L)
{
    free(lua_touserdata(L, 1));
    return 0;
}

static lua_State *new_state(void)
{
    lua_State *L = luaL_newstate();
    ck_assert(L != NULL);
    luaL_openlibs(L);
    lua_pushcfunction(L, luaopen_skynet_seri);
    lua_call(L, 0, 1);
    lua_setglobal(L, "seri");
    lua_register(L, "sha256hex", l_sha256hex);
    lua_register(L, "check", l_check);
    lua_register(L, "cfree", l_cfree);
    if (luaL_loadbuffer(L, prelude, sizeof prelude - 1, "=prelude") || lua_pcall(L, 0, 0, 0))
        ck_abort_msg("prelude: %s", lua_tostring(L, -1));
    return L;
}

/* Run a chunk that returns true, or false and a reason. */
static void expect_chunk(lua_State *L, const char *chunk)
{
    if (luaL_loadstring(L, chunk) || lua_pcall(L, 0, 2, 0))
        ck_abort_msg("%s\n  raised: %s", chunk, lua_tostring(L, -1));
    ck_assert_msg(lua_toboolean(L, -2), "%s\n  failed: %s", chunk,
                  lua_isstring(L, -1) ? lua_tostring(L, -1) : "(no reason)");
    lua_pop(L, 2);
}

/* Call the global Lua function fn on one vector; it returns true, or false and a reason. */
static void expect_vector(lua_State *L, const char *fn, const struct vec *v)
{
    lua_getglobal(L, fn);
    lua_pushstring(L, v->desc);
    if (v->bytes)
        lua_pushlstring(L, (const char *)v->bytes, v->len);
    else
        lua_pushnil(L);
    if (v->hashed) {
        lua_pushinteger(L, (lua_Integer)v->len);
        lua_pushstring(L, v->sha);
    } else {
        lua_pushnil(L);
        lua_pushnil(L);
    }
    if (lua_pcall(L, 4, 2, 0))
        ck_abort_msg("%s: %s raised %s", v->name, fn, lua_tostring(L, -1));
    ck_assert_msg(lua_toboolean(L, -2), "%s (%s): %s", v->name, v->desc,
                  lua_isstring(L, -1) ? lua_tostring(L, -1) : "(no reason)");
    lua_pop(L, 2);
}

/* The hex field as a Lua string argument: Lua helpers take hex text for bytes. */
static void expect_vector_hex(lua_State *L, const char *fn, const struct vec *v)
{
    struct vec copy = *v;
    copy.bytes = (unsigned char *)(v->bytes ? v->field : NULL);
    copy.len = v->bytes ? strlen(v->field) : v->len;
    expect_vector(L, fn, &copy);
}

/* seri_check (both modes) and seri_unpack must agree on buf: accepted by one iff by the other,
 * with the same reason text. Returns 1 when the input decodes. */
static int agree(lua_State *L, const unsigned char *buf, size_t len, const char *what)
{
    char e1[256], e0[256];
    int c1 = seri_check(buf, len, 1, e1, sizeof e1);
    int c0 = seri_check(buf, len, 0, e0, sizeof e0);
    lua_settop(L, 0);
    lua_pushcfunction(L, seri_unpack);
    lua_pushlightuserdata(L, (void *)buf);
    lua_pushinteger(L, (lua_Integer)len);
    int rc = lua_pcall(L, 2, 0, 0);
    ck_assert_msg((rc == 0) == (c1 == 0), "%s (%zu bytes): seri_check says %s, unpack says %s",
                  what, len, c1 ? e1 : "ok", rc ? lua_tostring(L, -1) : "ok");
    if (rc)
        ck_assert_msg(strcmp(lua_tostring(L, -1), e1) == 0, "%s: unpack '%s' vs check '%s'", what,
                      lua_tostring(L, -1), e1);
    ck_assert_msg(c0 != 0 || c1 == 0, "%s: accepted without pointers only", what);
    if (c0 != 0 && c1 == 0)
        ck_assert_msg(strstr(e0, "light userdata") != NULL, "%s: %s", what, e0);
    lua_settop(L, 0);
    return rc == 0;
}

/* ---- the vectors ---- */

START_TEST(test_vector_files_load_with_three_fields_per_line)
{
    const struct vecfile *files[] = {&vf_pack, &vf_errors, &vf_unpack};
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(files[i]->n > 0, "%s: not found or empty (SKYJET_VECTORS?)", files[i]->file);
        ck_assert_msg(files[i]->bad == 0, "%s: %d malformed lines", files[i]->file, files[i]->bad);
    }
}
END_TEST

START_TEST(test_pack_vector_encodes_to_vector_bytes)
{
    const struct vec *v = &vf_pack.v[_i];
    lua_State *L = new_state();
    lua_getglobal(L, "decode_only");
    lua_pushstring(L, v->desc);
    lua_call(L, 1, 1);
    if (!lua_toboolean(L, -1)) /* decode-only lines hold Lua 5.4 floats with integral values */
        expect_vector_hex(L, "check_pack_encodes", v);
    lua_close(L);
}
END_TEST

START_TEST(test_pack_vector_bytes_decode_to_described_value)
{
    lua_State *L = new_state();
    expect_vector_hex(L, "check_pack_decodes", &vf_pack.v[_i]);
    lua_close(L);
}
END_TEST

START_TEST(test_pack_error_vector_raises_or_packs_as_recorded)
{
    const struct vec *v = &vf_errors.v[_i];
    lua_State *L = new_state();
    if (strstr(v->desc, "<lightuserdata>")) { /* pack the vector's own pointer value */
        uint64_t p = 0;
        ck_assert_uint_eq(v->len, 9);
        for (int i = 8; i >= 1; i--)
            p = p << 8 | v->bytes[i];
        lua_pushlightuserdata(L, (void *)(uintptr_t)p);
        lua_setglobal(L, "lud");
    }
    expect_vector_hex(L, "check_pack_error_line", v);
    lua_close(L);
}
END_TEST

START_TEST(test_unpack_vector_decodes_or_fails_as_recorded)
{
    lua_State *L = new_state();
    expect_vector(L, "check_unpack_line", &vf_unpack.v[_i]);
    lua_close(L);
}
END_TEST

START_TEST(test_every_proper_prefix_of_every_vector_fails_cleanly_or_decodes)
{
    lua_State *L = new_state();
    ck_assert_int_gt(n_hexvecs, 100);
    for (int i = 0; i < n_hexvecs; i++) {
        const struct vec *v = hexvecs[i];
        for (size_t n = 0; n < v->len; n++) {
            unsigned char *copy = malloc(n ? n : 1); /* exact size: ASan sees any overread */
            memcpy(copy, v->bytes, n);
            if (!agree(L, copy, n, v->name)) {
                char err[256];
                seri_check(copy, n, 1, err, sizeof err);
                ck_assert_msg(strncmp(err, "Invalid serialize stream: ", 26) == 0 ||
                                  strcmp(err, "table index is NaN") == 0,
                              "%s[:%zu]: %s", v->name, n, err);
            }
            free(copy);
        }
    }
    lua_close(L);
}
END_TEST

/* ---- encoder ---- */

START_TEST(test_integral_doubles_encode_as_integers)
{
    lua_State *L = new_state();
    expect_chunk(L, "return packs_to('0a01', 1.0)");
    expect_chunk(L, "return packs_to('02', 0.0)");
    expect_chunk(L, "return packs_to('320000008000000000', 2^31)");
    expect_chunk(L, "return packs_to('2200000080', -2^31)");
    expect_chunk(L, "return packs_to('320000000000010000', 2^40)");
    expect_chunk(L, "return packs_to('320000000000000010', 2^60)");
    expect_chunk(L, "return packs_to('320000000000000080', -2^63)");
    lua_close(L);
}
END_TEST

START_TEST(test_negative_zero_encodes_as_float)
{
    lua_State *L = new_state();
    expect_chunk(L, "return packs_to('420000000000000080', -0.0)");
    expect_chunk(L, "local z = 0; return packs_to('420000000000000080', -z)");
    lua_close(L);
}
END_TEST

START_TEST(test_non_integral_infinite_nan_and_2_63_encode_as_float)
{
    lua_State *L = new_state();
    expect_chunk(L, "return packs_to('42000000000000f83f', 1.5)");
    expect_chunk(L, "return packs_to('42000000000000f07f', math.huge)");
    expect_chunk(L, "return packs_to('42000000000000f0ff', -math.huge)");
    expect_chunk(L, "return packs_to('42000000000000e043', 2^63)");
    expect_chunk(L, "return packs_to('42010000000000e0c3', -2^63 - 2^11)");
    expect_chunk(L, "local s = seri.packstring(0/0) return #s == 9 and s:byte(1) == 0x42 "
                    "and (s:byte(8) >= 0xf0 and s:byte(9) % 128 == 0x7f)");
    lua_close(L);
}
END_TEST

START_TEST(test_int64_cdata_encodes_as_integer_with_a4_widths)
{
    lua_State *L = new_state();
    expect_chunk(L, "return packs_to('02', 0LL)");
    expect_chunk(L, "return packs_to('0aff', 255LL)");
    expect_chunk(L, "return packs_to('120001', 256LL)");
    expect_chunk(L, "return packs_to('22ffffffff', -1LL)");
    expect_chunk(L, "return packs_to('320000008000000000', 0x80000000LL)");
    expect_chunk(L, "return packs_to('320100000000002000', 0x20000000000001LL)");
    expect_chunk(L, "return packs_to('32ffffffffffffff7f', 0x7fffffffffffffffLL)");
    expect_chunk(L, "return packs_to('320000000000000080', -0x7fffffffffffffffLL - 1)");
    expect_chunk(L, "return packs_to('0a05', require('ffi').new('const int64_t', 5))");
    lua_close(L);
}
END_TEST

START_TEST(test_uint64_cdata_up_to_int64_max_encodes_as_integer)
{
    lua_State *L = new_state();
    expect_chunk(L, "return packs_to('0a07', 7ULL)");
    expect_chunk(L, "return packs_to('32ffffffffffffff7f', 0x7fffffffffffffffULL)");
    lua_close(L);
}
END_TEST

START_TEST(test_uint64_cdata_above_int64_max_raises_overflow)
{
    lua_State *L = new_state();
    expect_chunk(L, "return raises('integer overflow: uint64 value does not fit int64', "
                    "seri.packstring, 0x8000000000000000ULL)");
    expect_chunk(L, "return raises('integer overflow: uint64 value does not fit int64', "
                    "seri.packstring, {1, 2, 0xffffffffffffffffULL})");
    lua_close(L);
}
END_TEST

START_TEST(test_other_cdata_raises_unsupport_type)
{
    lua_State *L = new_state();
    const char *cases[] = {"ffi.new('int32_t', 1)", "ffi.new('double', 1)",
                           "ffi.new('char[4]')",    "ffi.cast('void *', 0)",
                           "ffi.typeof('int64_t')", "ffi.new('struct { int64_t x; }')"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char chunk[256];
        snprintf(chunk, sizeof chunk,
                 "local ffi = require('ffi') "
                 "return raises('Unsupport type cdata to serialize', seri.packstring, %s)",
                 cases[i]);
        expect_chunk(L, chunk);
    }
    lua_close(L);
}
END_TEST

START_TEST(test_unsupported_types_raise_with_type_name)
{
    lua_State *L = new_state();
    expect_chunk(L,
                 "return raises('Unsupport type function to serialize', seri.packstring, print)");
    expect_chunk(L, "return raises('Unsupport type thread to serialize', seri.packstring, "
                    "coroutine.create(print))");
    expect_chunk(L, "return raises('Unsupport type userdata to serialize', seri.packstring, "
                    "newproxy())");
    expect_chunk(L, "return raises('Unsupport type function to serialize', seri.packstring, "
                    "{a = {print}})");
    lua_close(L);
}
END_TEST

START_TEST(test_cdata_table_key_encodes_like_a_value)
{
    lua_State *L = new_state();
    expect_chunk(L, "return packs_to('06320100000000002000' .. '0a01' .. '00', "
                    "{[0x20000000000001LL] = 1})");
    lua_close(L);
}
END_TEST

START_TEST(test_integral_keys_in_array_range_are_not_repeated_in_hash_part)
{
    lua_State *L = new_state();
    expect_chunk(L, "local t = {} t[1] = 'a' t[2.0] = 'b' return packs_to('160c610c6200', t)");
    lua_close(L);
}
END_TEST

START_TEST(test_pairs_metamethod_layout_is_used_though_luajit_pairs_ignores_it)
{
    lua_State *L = new_state();
    expect_chunk(L, "local t = setmetatable({1, 2, 3}, {__pairs = function(t) "
                    "return next, {x = 1}, nil end}) return packs_to('060c780a0100', t)");
    expect_chunk(L, "local function it(s, k) if k < 3 then return k + 1, k * 10 end end "
                    "local t = setmetatable({}, {__pairs = function() return it, nil, 0 end}) "
                    "return packs_to('060a01020a020a0a0a030a1400', t)");
    lua_close(L);
}
END_TEST

START_TEST(test_pairs_metamethod_error_propagates)
{
    lua_State *L = new_state();
    expect_chunk(L, "local t = setmetatable({}, {__pairs = function() error('no pairs', 0) end}) "
                    "return raises('no pairs', seri.packstring, t)");
    expect_chunk(
        L, "local t = setmetatable({}, {__pairs = function() return function() "
           "error('iter failed', 0) end end}) return raises('iter failed', seri.packstring, t)");
    lua_close(L);
}
END_TEST

START_TEST(test_other_metamethods_are_ignored)
{
    lua_State *L = new_state();
    expect_chunk(L, "local t = setmetatable({1}, {__index = function() return 9 end, "
                    "__len = function() return 5 end}) return packs_to('0e0a0100', t)");
    lua_close(L);
}
END_TEST

START_TEST(test_depth_limit_counts_keys_and_cycles)
{
    lua_State *L = new_state();
    expect_chunk(L, "return raises(\"serialize can't pack too depth table\", seri.packstring, "
                    "nest(32, {[{1}] = true}))");
    expect_chunk(L, "return packs_to(('0e'):rep(31) .. '06' .. '0600' .. '09' .. '00' .. "
                    "('00'):rep(31), nest(32, {[{}] = true}))");
    expect_chunk(L, "local t = {} t.self = t return raises(\"serialize can't pack too depth "
                    "table\", seri.packstring, t)");
    lua_close(L);
}
END_TEST

START_TEST(test_lightuserdata_encodes_as_8_pointer_bytes_le)
{
    lua_State *L = new_state();
    lua_pushlightuserdata(L, (void *)(uintptr_t)0x00007f0102030405ull);
    lua_setglobal(L, "lud");
    expect_chunk(L, "return packs_to('0305040302017f0000', lud)");
    expect_chunk(L, "return unpacks_to('0305040302017f0000', lud)");
    lua_close(L);
}
END_TEST

START_TEST(test_pack_returns_malloced_buffer_and_size)
{
    lua_State *L = new_state();
    lua_pushcfunction(L, seri_pack);
    lua_pushinteger(L, 1);
    lua_pushstring(L, "a");
    lua_pushnil(L);
    lua_pushboolean(L, 1);
    lua_call(L, 4, 2);
    ck_assert_int_eq(lua_type(L, -2), LUA_TLIGHTUSERDATA);
    ck_assert_int_eq(lua_tointeger(L, -1), 6);
    void *p = lua_touserdata(L, -2);
    ck_assert_mem_eq(p, "\x0a\x01\x0c\x61\x00\x09", 6);
    free(p);
    lua_close(L);
}
END_TEST

START_TEST(test_pack_of_no_values_returns_null_and_zero)
{
    lua_State *L = new_state();
    lua_pushcfunction(L, seri_pack);
    lua_call(L, 0, 2);
    ck_assert_ptr_eq(lua_touserdata(L, -2), NULL);
    ck_assert_int_eq(lua_tointeger(L, -1), 0);
    expect_chunk(L, "return seri.packstring() == ''");
    lua_close(L);
}
END_TEST

START_TEST(test_pack_range_encodes_a_stack_slice_and_keeps_the_stack)
{
    lua_State *L = new_state();
    lua_pushstring(L, "skip");
    lua_pushinteger(L, 300);
    lua_newtable(L);
    size_t size;
    unsigned char *p = seri_pack_range(L, -2, -1, &size);
    ck_assert_int_eq(lua_gettop(L), 3);
    ck_assert_uint_eq(size, 5);
    ck_assert_mem_eq(p, "\x12\x2c\x01\x06\x00", 5);
    free(p);
    p = seri_pack_range(L, 2, 2, &size);
    ck_assert_uint_eq(size, 3);
    free(p);
    lua_close(L);
}
END_TEST

START_TEST(test_large_messages_pack_identically_with_pack_and_packstring)
{
    lua_State *L = new_state();
    expect_chunk(L, "return roundtrips(('a\\0b'):rep(400000), {('x'):rep(70000), 1.5}, 3)");
    expect_chunk(L, "local t = {} for i = 1, 100000 do t[i] = i end return roundtrips(t)");
    lua_close(L);
}
END_TEST

static size_t heap_in_use(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#else
    return 0;
#endif
}

/* Every encoder error after the message moved to the heap: no block may outlive lua_close. */
START_TEST(test_failing_pack_after_heap_growth_leaks_nothing)
{
    static const char *const failing[] = {
        "return seri.packstring(big, print)",
        "return seri.pack(big, {big, coroutine.create(print)})",
        "return seri.packstring(big, nest(40, {}))",
        "return seri.pack({big, setmetatable({}, {__pairs = function() error('x') end})})",
        "return seri.packstring({big}, 0xffffffffffffffffULL)",
        "return seri.pack(big, require('ffi').new('int8_t'))",
    };
    size_t before = heap_in_use();
    for (int round = 0; round < 4; round++) {
        lua_State *L = new_state();
        ck_assert(luaL_dostring(L, "big = ('\\1'):rep(2^20)") == 0);
        for (size_t i = 0; i < sizeof failing / sizeof failing[0]; i++) {
            ck_assert_msg(luaL_dostring(L, failing[i]) != 0, "%s did not fail", failing[i]);
            lua_settop(L, 0);
        }
        lua_close(L);
    }
#ifdef HAVE_LSAN
    ck_assert_msg(__lsan_do_recoverable_leak_check() == 0, "LeakSanitizer found leaks");
#endif
    size_t after = heap_in_use(); /* 24 failures of >= 1 MiB each would show here */
    ck_assert_msg(after < before + (1u << 20), "heap grew from %zu to %zu", before, after);
}
END_TEST

/* ---- decoder ---- */

START_TEST(test_unpack_of_nil_nothing_or_zero_bytes_returns_nothing)
{
    lua_State *L = new_state();
    expect_chunk(L, "return select('#', seri.unpack()) == 0 and select('#', seri.unpack(nil)) == 0 "
                    "and select('#', seri.unpack('')) == 0");
    lua_pushcfunction(L, seri_unpack);
    lua_pushlightuserdata(L, NULL);
    lua_pushinteger(L, 0);
    lua_call(L, 2, LUA_MULTRET);
    ck_assert_int_eq(lua_gettop(L), 0);
    lua_close(L);
}
END_TEST

START_TEST(test_unpack_reads_lightuserdata_and_size)
{
    lua_State *L = new_state();
    static const unsigned char buf[] = {0x0a, 0x01, 0x0c, 0x61, 0x00, 0x09, 0xff};
    lua_pushcfunction(L, seri_unpack);
    lua_pushlightuserdata(L, (void *)buf);
    lua_pushinteger(L, 6); /* the trailing 0xff is outside the message */
    lua_call(L, 2, LUA_MULTRET);
    ck_assert_int_eq(lua_gettop(L), 4);
    ck_assert_int_eq((int)lua_tonumber(L, 1), 1);
    ck_assert_str_eq(lua_tostring(L, 2), "a");
    ck_assert(lua_isnil(L, 3));
    ck_assert(lua_toboolean(L, 4));
    lua_close(L);
}
END_TEST

START_TEST(test_unpack_rejects_bad_arguments)
{
    lua_State *L = new_state();
    expect_chunk(L, "return raises('bad argument #1', seri.unpack, 5)");
    expect_chunk(L, "return raises('bad argument #1', seri.unpack, {})");
    lua_pushlightuserdata(L, (void *)"x");
    lua_setglobal(L, "lud");
    expect_chunk(L, "return raises('bad argument #2', seri.unpack, lud, -1)");
    expect_chunk(L, "return raises('bad argument #2', seri.unpack, lud)");
    lua_pushlightuserdata(L, NULL);
    lua_setglobal(L, "null");
    expect_chunk(L, "return raises('bad argument #1', seri.unpack, null, 4)");
    lua_close(L);
}
END_TEST

START_TEST(test_error_text_names_the_reason_and_offset)
{
    lua_State *L = new_state();
    expect_chunk(L,
                 "local ok, e = pcall(seri.unpack, unhex('0a012c6869')) return e == "
                 "'Invalid serialize stream: truncated string (need 5 bytes, 2 left) at offset 3',"
                 " e");
    lua_close(L);
}
END_TEST

START_TEST(test_lenient_forms_decode_like_skynet)
{
    lua_State *L = new_state();
    expect_chunk(L, "return unpacks_to('08f811f9', nil, nil, true, true)");
    expect_chunk(L, "return unpacks_to('1201002201000000320100000000000000', 1, 1, 1)");
    expect_chunk(L, "return unpacks_to('15050068656c6c6f25020000006869', 'hello', 'hi')");
    expect_chunk(L, "return unpacks_to('fe0a010a0100', {1}) and unpacks_to('fe0200', {})");
    expect_chunk(L, "return unpacks_to('fe32ffffffffffffffff0a010a0500', {5})");
    lua_close(L);
}
END_TEST

START_TEST(test_nil_valued_hash_entry_is_skipped_and_last_key_wins)
{
    lua_State *L = new_state();
    expect_chunk(L, "return unpacks_to('0e0a010a010000', {1})");
    expect_chunk(L, "return unpacks_to('060c610a010c610a020c620000', {a = 2})");
    lua_close(L);
}
END_TEST

START_TEST(test_table_and_boolean_keys_decode)
{
    lua_State *L = new_state();
    expect_chunk(L, "return unpacks_to('0606000a01090c79010000', {[{}] = 1, [true] = 'y', "
                    "[false] = nil})");
    expect_chunk(L, "return unpacks_to('06010900', {[false] = true})");
    lua_close(L);
}
END_TEST

START_TEST(test_integers_beyond_2_53_decode_to_exact_int64_cdata)
{
    lua_State *L = new_state();
    expect_chunk(L, "return unpacks_to('320100000000002000', 0x20000000000001LL)");
    expect_chunk(L, "return unpacks_to('32ffffffffffffdfff', -0x20000000000001LL)");
    expect_chunk(L, "return unpacks_to('32ffffffffffffff7f', 0x7fffffffffffffffLL)");
    expect_chunk(L, "local v = seri.unpack(unhex('320100000000002000')) "
                    "return type(v) == 'cdata' and tostring(v) == '9007199254740993LL'");
    lua_close(L);
}
END_TEST

START_TEST(test_integers_a_double_holds_decode_to_numbers)
{
    lua_State *L = new_state();
    expect_chunk(L, "local a, b, c, d = seri.unpack(unhex('32000000000000200032000000000000e0ff'"
                    "..'320000000000000080320000000000000040')) return type(a) == 'number' and "
                    "a == 2^53 and b == -2^53 and c == -2^63 and d == 2^62");
    lua_close(L);
}
END_TEST

START_TEST(test_nan_table_key_is_rejected_by_unpack_and_check)
{
    lua_State *L = new_state();
    expect_chunk(L,
                 "local b = unhex('0642000000000000f8ff0a0100') return raises('table index "
                 "is NaN', seri.unpack, b) and select(2, check(b, true)) == 'table index is NaN'");
    lua_close(L);
}
END_TEST

START_TEST(test_string_length_with_bit_31_set_is_rejected)
{
    lua_State *L = new_state();
    const char *cases[] = {"25ffffffff00", "250000008000", "2500000080" /* no body at all */,
                           "0e25ffffffff6800"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char chunk[256];
        snprintf(chunk, sizeof chunk,
                 "return raises('Invalid serialize stream: string length', seri.unpack, "
                 "unhex('%s'))",
                 cases[i]);
        expect_chunk(L, chunk);
    }
    lua_close(L);
}
END_TEST

START_TEST(test_table_count_beyond_remaining_bytes_is_rejected)
{
    lua_State *L = new_state();
    const char *cases[] = {"fe22ffffff7f00", "fe32ffffffffffffff7f00", "fe2200001000", "fe0a030202",
                           "fe0a0302020200" /* 3 + end = 4 bytes needed, 4 left */};
    for (size_t i = 0; i < 4; i++) {
        char chunk[256];
        snprintf(chunk, sizeof chunk,
                 "return raises('Invalid serialize stream: table count', seri.unpack, "
                 "unhex('%s'))",
                 cases[i]);
        expect_chunk(L, chunk);
    }
    expect_chunk(L, "return unpacks_to('fe0a0302020200', {0, 0, 0})");
    lua_close(L);
}
END_TEST

static void nested_bytes(luaL_Buffer *b, int levels)
{
    for (int i = 1; i < levels; i++)
        luaL_addchar(b, 0x0e);
    luaL_addchar(b, 0x06);
    for (int i = 0; i < levels; i++)
        luaL_addchar(b, 0x00);
}

START_TEST(test_nesting_to_max_depth_decodes_and_one_more_is_rejected)
{
    lua_State *L = new_state();
    for (int levels = SERI_MAX_DEPTH; levels <= SERI_MAX_DEPTH + 1; levels++) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        nested_bytes(&b, levels);
        luaL_pushresult(&b);
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        char err[256];
        int ok = seri_check(s, n, 0, err, sizeof err) == 0;
        ck_assert_int_eq(ok, levels <= SERI_MAX_DEPTH);
        ck_assert_int_eq(agree(L, (const unsigned char *)s, n, "nested"), ok);
        if (!ok)
            ck_assert_str_eq(err, "Invalid serialize stream: tables nested deeper than 64 at "
                                  "offset 65");
    }
    lua_close(L);
}
END_TEST

START_TEST(test_value_count_is_bounded_and_huge_flat_input_fails_cleanly)
{
    lua_State *L = new_state();
    unsigned char *zeros = calloc(1, 1u << 20);
    ck_assert_int_eq(agree(L, zeros, SERI_MAX_VALUES, "max values"), 1);
    lua_pushcfunction(L, seri_unpack);
    lua_pushlightuserdata(L, zeros);
    lua_pushinteger(L, SERI_MAX_VALUES);
    lua_call(L, 2, LUA_MULTRET);
    ck_assert_int_eq(lua_gettop(L), SERI_MAX_VALUES);
    ck_assert_int_eq(agree(L, zeros, SERI_MAX_VALUES + 1, "max values + 1"), 0);
    ck_assert_int_eq(agree(L, zeros, 1u << 20, "1M nils"), 0);
    char err[256];
    seri_check(zeros, 1u << 20, 1, err, sizeof err);
    ck_assert_str_eq(err, "Invalid serialize stream: more than 7000 values at offset 7000");
    expect_chunk(L, "return select('#', seri.unpack(('\\0'):rep(7000))) == 7000");
    free(zeros);
    lua_close(L);
}
END_TEST

START_TEST(test_lightuserdata_decodes_to_its_pointer_and_check_can_refuse_it)
{
    lua_State *L = new_state();
    lua_pushlightuserdata(L, (void *)(uintptr_t)0x1000);
    lua_setglobal(L, "lud");
    expect_chunk(L, "return unpacks_to('030010000000000000', lud)");
    char err[256];
    ck_assert_int_eq(seri_check("\x03\x00\x10\0\0\0\0\0\0", 9, 1, err, sizeof err), 0);
    ck_assert_int_eq(seri_check("\x03\x00\x10\0\0\0\0\0\0", 9, 0, err, sizeof err), -1);
    ck_assert_str_eq(err, "Invalid serialize stream: light userdata not allowed here at offset 1");
    ck_assert_int_eq(seri_check("\x0e\x03\x00\x10\0\0\0\0\0\0\x00", 11, 0, err, sizeof err), -1);
    lua_close(L);
}
END_TEST

START_TEST(test_check_accepts_empty_and_rejects_null_with_size)
{
    char err[64];
    ck_assert_int_eq(seri_check(NULL, 0, 0, err, sizeof err), 0);
    ck_assert_int_eq(seri_check("", 0, 0, NULL, 0), 0);
    ck_assert_int_eq(seri_check(NULL, 3, 0, err, sizeof err), -1);
    ck_assert_int_eq(seri_check("\x07", 1, 1, NULL, 0), -1);
    ck_assert_int_eq(seri_check("\x07", 1, 1, err, 8), -1); /* truncated, still terminated */
    ck_assert_uint_eq(strlen(err), 7);
}
END_TEST

/* ---- round trips ---- */

START_TEST(test_random_nested_values_round_trip)
{
    lua_State *L = new_state();
    expect_chunk(L, "math.randomseed(20260611) "
                    "for i = 1, 1500 do "
                    "  local n = math.random(0, 4) local v = {} "
                    "  for j = 1, n do v[j] = random_value(0) end "
                    "  local ok, why = roundtrips(unpack(v, 1, n)) "
                    "  if not ok then return false, 'case ' .. i .. ': ' .. why end "
                    "end return true");
    lua_close(L);
}
END_TEST

START_TEST(test_special_numbers_round_trip_exactly)
{
    lua_State *L = new_state();
    expect_chunk(L, "return roundtrips(0, -0.0, 1/0, -1/0, 0/0, 2^53, -2^53, 2^63, -2^63, 2^64, "
                    "5e-324, 0.1, 2^31, -2^31 - 1)");
    expect_chunk(L, "return roundtrips(0x1fffffffffffffLL, 0x20000000000001LL, "
                    "-0x20000000000001LL, 0x7fffffffffffffffLL, -0x7fffffffffffffffLL - 1)");
    expect_chunk(L, "local a, b = seri.unpack(seri.packstring(0x1fffffffffffffLL, "
                    "0x20000000000001LL)) return type(a) == 'number' and type(b) == 'cdata'");
    lua_close(L);
}
END_TEST

START_TEST(test_strings_of_every_length_class_round_trip_with_nul_bytes)
{
    lua_State *L = new_state();
    expect_chunk(L, "for _, n in ipairs({0, 1, 31, 32, 255, 65535, 65536, 2^20}) do "
                    "  local s = ('\\0\\255x'):rep(n):sub(1, n) "
                    "  local ok, why = roundtrips(s, {s}, {[s] = s}) "
                    "  if not ok then return false, n .. ': ' .. why end "
                    "end return true");
    lua_close(L);
}
END_TEST

/* ---- seri_check and seri_unpack agree ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static size_t mutate(unsigned char *buf, size_t len, size_t cap)
{
    static const unsigned char interesting[] = {0x00, 0x06, 0x07, 0x0e, 0xfe, 0x25, 0x15, 0xff,
                                                0x42, 0x7f, 0x80, 0x03, 0x32, 0xf8, 0x22, 0x1f};
    int rounds = 1 + (int)(rng() % 6);
    for (int r = 0; r < rounds; r++) {
        size_t at = len ? rng() % len : 0;
        switch (rng() % 7) {
        case 0: /* flip a bit */
            if (len)
                buf[at] ^= (unsigned char)(1u << (rng() % 8));
            break;
        case 1: /* an interesting byte */
            if (len)
                buf[at] = interesting[rng() % sizeof interesting];
            break;
        case 2: /* a random byte */
            if (len)
                buf[at] = (unsigned char)rng();
            break;
        case 3: /* insert */
            if (len < cap) {
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = interesting[rng() % sizeof interesting];
                len++;
            }
            break;
        case 4: /* delete */
            if (len) {
                memmove(buf + at, buf + at + 1, len - at - 1);
                len--;
            }
            break;
        case 5: /* truncate */
            len = at;
            break;
        default: /* repeat a chunk */
            if (len && len < cap) {
                size_t n = 1 + rng() % (len - at);
                if (n > cap - len)
                    n = cap - len;
                memmove(buf + at + n, buf + at, len - at);
                len += n;
            }
        }
    }
    return len;
}

START_TEST(test_random_and_mutated_inputs_agree_between_check_and_unpack)
{
    enum { CAP = 4096, RUNS = 200000 };
    lua_State *L = new_state();
    unsigned char *work = malloc(CAP), *exact;
    int decoded = 0;
    ck_assert_int_gt(n_hexvecs, 0);
    for (int i = 0; i < RUNS; i++) {
        size_t len;
        if (i % 10 == 0) { /* random bytes */
            len = rng() % 64;
            for (size_t j = 0; j < len; j++)
                work[j] = (unsigned char)rng();
        } else { /* a mutated vector */
            const struct vec *v = hexvecs[rng() % (uint64_t)n_hexvecs];
            len = v->len < CAP ? v->len : CAP;
            memcpy(work, v->bytes, len);
            len = mutate(work, len, CAP);
        }
        exact = malloc(len ? len : 1); /* exact size: ASan sees any overread */
        memcpy(exact, work, len);
        decoded += agree(L, exact, len, "mutated input");
        free(exact);
        if (i % 4096 == 0)
            lua_gc(L, LUA_GCCOLLECT, 0);
    }
    ck_assert_int_gt(decoded, RUNS / 20); /* the mutations do not only produce garbage */
    free(work);
    lua_close(L);
}
END_TEST

/* ---- regressions found by fuzz_seri ---- */

/* fuzz_seri, first minute: a decoded value nested deeper than 32 with more than 256 bytes
 * before the deep part failed to re-pack, and LeakSanitizer (which cannot see into LuaJIT's own
 * heap) reported the block as lost until the next GC. The encoder now frees it as it raises. */
START_TEST(test_regression_failed_pack_frees_its_block_before_the_gc_runs)
{
    lua_State *L = new_state();
    ck_assert(luaL_dostring(L, "deep = seri.unpack(('\\14'):rep(39) .. '\\6\\0' .. "
                               "('\\0'):rep(39)) big = ('y'):rep(2^20)") == 0);
    lua_gc(L, LUA_GCSTOP, 0);
    size_t before = heap_in_use();
    for (int i = 0; i < 8; i++) {
        ck_assert(luaL_dostring(L, "return seri.packstring(big, deep)") != 0);
        ck_assert_str_eq(lua_tostring(L, -1), "serialize can't pack too depth table");
        lua_settop(L, 0);
    }
#ifdef HAVE_LSAN
    ck_assert_msg(__lsan_do_recoverable_leak_check() == 0, "block left to the GC");
#endif
    size_t after = heap_in_use();
    ck_assert_msg(after < before + (1u << 20), "heap grew from %zu to %zu", before, after);
    lua_close(L);
}
END_TEST

static Suite *seri_suite(void)
{
    Suite *s = suite_create("seri");
    TCase *tc = tcase_create("vectors");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_vector_files_load_with_three_fields_per_line);
    tcase_add_loop_test(tc, test_pack_vector_encodes_to_vector_bytes, 0, vf_pack.n);
    tcase_add_loop_test(tc, test_pack_vector_bytes_decode_to_described_value, 0, vf_pack.n);
    tcase_add_loop_test(tc, test_pack_error_vector_raises_or_packs_as_recorded, 0, vf_errors.n);
    tcase_add_loop_test(tc, test_unpack_vector_decodes_or_fails_as_recorded, 0, vf_unpack.n);
    tcase_add_test(tc, test_every_proper_prefix_of_every_vector_fails_cleanly_or_decodes);
    suite_add_tcase(s, tc);

    tc = tcase_create("encoder");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_integral_doubles_encode_as_integers);
    tcase_add_test(tc, test_negative_zero_encodes_as_float);
    tcase_add_test(tc, test_non_integral_infinite_nan_and_2_63_encode_as_float);
    tcase_add_test(tc, test_int64_cdata_encodes_as_integer_with_a4_widths);
    tcase_add_test(tc, test_uint64_cdata_up_to_int64_max_encodes_as_integer);
    tcase_add_test(tc, test_uint64_cdata_above_int64_max_raises_overflow);
    tcase_add_test(tc, test_other_cdata_raises_unsupport_type);
    tcase_add_test(tc, test_unsupported_types_raise_with_type_name);
    tcase_add_test(tc, test_cdata_table_key_encodes_like_a_value);
    tcase_add_test(tc, test_integral_keys_in_array_range_are_not_repeated_in_hash_part);
    tcase_add_test(tc, test_pairs_metamethod_layout_is_used_though_luajit_pairs_ignores_it);
    tcase_add_test(tc, test_pairs_metamethod_error_propagates);
    tcase_add_test(tc, test_other_metamethods_are_ignored);
    tcase_add_test(tc, test_depth_limit_counts_keys_and_cycles);
    tcase_add_test(tc, test_lightuserdata_encodes_as_8_pointer_bytes_le);
    tcase_add_test(tc, test_pack_returns_malloced_buffer_and_size);
    tcase_add_test(tc, test_pack_of_no_values_returns_null_and_zero);
    tcase_add_test(tc, test_pack_range_encodes_a_stack_slice_and_keeps_the_stack);
    tcase_add_test(tc, test_large_messages_pack_identically_with_pack_and_packstring);
    tcase_add_test(tc, test_failing_pack_after_heap_growth_leaks_nothing);
    suite_add_tcase(s, tc);

    tc = tcase_create("decoder");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_unpack_of_nil_nothing_or_zero_bytes_returns_nothing);
    tcase_add_test(tc, test_unpack_reads_lightuserdata_and_size);
    tcase_add_test(tc, test_unpack_rejects_bad_arguments);
    tcase_add_test(tc, test_error_text_names_the_reason_and_offset);
    tcase_add_test(tc, test_lenient_forms_decode_like_skynet);
    tcase_add_test(tc, test_nil_valued_hash_entry_is_skipped_and_last_key_wins);
    tcase_add_test(tc, test_table_and_boolean_keys_decode);
    tcase_add_test(tc, test_integers_beyond_2_53_decode_to_exact_int64_cdata);
    tcase_add_test(tc, test_integers_a_double_holds_decode_to_numbers);
    tcase_add_test(tc, test_nan_table_key_is_rejected_by_unpack_and_check);
    tcase_add_test(tc, test_string_length_with_bit_31_set_is_rejected);
    tcase_add_test(tc, test_table_count_beyond_remaining_bytes_is_rejected);
    tcase_add_test(tc, test_nesting_to_max_depth_decodes_and_one_more_is_rejected);
    tcase_add_test(tc, test_value_count_is_bounded_and_huge_flat_input_fails_cleanly);
    tcase_add_test(tc, test_lightuserdata_decodes_to_its_pointer_and_check_can_refuse_it);
    tcase_add_test(tc, test_check_accepts_empty_and_rejects_null_with_size);
    suite_add_tcase(s, tc);

    tc = tcase_create("roundtrip");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_random_nested_values_round_trip);
    tcase_add_test(tc, test_special_numbers_round_trip_exactly);
    tcase_add_test(tc, test_strings_of_every_length_class_round_trip_with_nul_bytes);
    suite_add_tcase(s, tc);

    tc = tcase_create("agreement");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_random_and_mutated_inputs_agree_between_check_and_unpack);
    tcase_add_test(tc, test_regression_failed_pack_frees_its_block_before_the_gc_runs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    load_vectors(&vf_pack);
    load_vectors(&vf_errors);
    load_vectors(&vf_unpack);
    SRunner *sr = srunner_create(seri_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed;
}

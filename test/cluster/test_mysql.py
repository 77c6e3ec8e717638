"""skynet.db.mysql against a real MariaDB (one server for the module: bootstrap takes seconds),
and against scripted fake servers for caching_sha2_password and bad input: every call either
answers or raises, nothing hangs."""
import hashlib
import struct
import subprocess
import time

from lib import check, wait_for
from servers import MARIADB_PASSWORD, fake_server, shared_mariadb

PRELUDE = 'local mysql = require "skynet.db.mysql"\n'


def server():
    m = shared_mariadb()
    m.sql("CREATE USER IF NOT EXISTS 'nopw'@'127.0.0.1';"
          "GRANT ALL ON *.* TO 'nopw'@'127.0.0.1';")
    return m


def setup(ctx):
    return server(), ctx.ctl_node("mdb")


def ev(node, code, **kw):
    return node.eval(PRELUDE + code, **kw)


def raises(node, code, pattern):
    return node.eval_raises(PRELUDE + code, pattern)


def connect(port, extra="", user="nopw"):
    return (f'G.db = mysql.connect {{ host = "127.0.0.1", port = {port}, user = "{user}", '
            f'database = "skynet"{extra} }}\n')


TYPES_TABLE = """
    DROP TABLE IF EXISTS types;
    CREATE TABLE types (id INT PRIMARY KEY, ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT,
        i INT, iu INT UNSIGNED, bi BIGINT, bu BIGINT UNSIGNED, de DECIMAL(12,3), fl FLOAT,
        db DOUBLE, d DATE, dt DATETIME, dt6 DATETIME(6), ts TIMESTAMP NULL, tm TIME, y YEAR,
        vc VARCHAR(20), bl BLOB, nu INT);
    INSERT INTO types VALUES (1, -128, 255, -32768, -2147483648, 4294967295,
        -9223372036854775808, 18446744073709551615, -12345.678, 1.5, 2.25, '2024-02-29',
        '2024-02-29 23:59:58', '2024-02-29 23:59:58.123456', '2020-03-20 15:30:40',
        '-838:59:59', 2155, 'héllo', UNHEX('00FF0D0A27225C1A'), NULL),
        (2, 127, 0, 32767, 2147483647, 0, 9223372036854775807, 9007199254740993, 0.001, -0.5,
        1e300, '1000-01-01', '1000-01-01 00:00:00', '1000-01-01 00:00:00.5', NULL, '12:34:56', 1901,
        '', '', NULL);
"""

# each row checked in Lua (cdata values compared through tostring); returns a list of mismatches
CHECK_ROWS = r"""
local function show(v)
    if type(v) == "cdata" then return tostring(v) end
    return v
end
local want = {
    { id = 1, ti = -128, tu = 255, si = -32768, i = -2147483648, iu = 4294967295,
      bi = "-9223372036854775808LL", bu = "18446744073709551615ULL", de = -12345.678, fl = 1.5,
      db = 2.25, d = "2024-02-29", dt = "2024-02-29 23:59:58",
      dt6 = "2024-02-29 23:59:58.123456", ts = "2020-03-20 15:30:40", tm = "-838:59:59",
      y = 2155, vc = "h\195\169llo", bl = "\0\255\r\n'\"\\\26" },
    { id = 2, ti = 127, tu = 0, si = 32767, i = 2147483647, iu = 0,
      bi = "9223372036854775807LL", bu = "9007199254740993ULL", de = 0.001, fl = -0.5,
      db = 1e300, d = "1000-01-01", dt = "1000-01-01 00:00:00", dt6 = "1000-01-01 00:00:00.500000",
      tm = "12:34:56", y = 1901, vc = "", bl = "" },
}
local bad = {}
local function compare(label, rows)
    if #rows ~= #want then bad[#bad + 1] = label .. ": " .. #rows .. " rows" return end
    for r, w in ipairs(want) do
        for k, v in pairs(w) do
            if show(rows[r][k]) ~= v then
                bad[#bad + 1] = string.format("%s row %d %s: got %s want %s", label, r, k,
                    tostring(rows[r][k]), tostring(v))
            end
        end
        for _, k in ipairs { "nu", "ts" } do
            if w[k] == nil and rows[r][k] ~= nil then
                bad[#bad + 1] = label .. " " .. k .. " should be nil"
            end
        end
    end
end
"""


def test_typed_values_text_and_binary(ctx):
    m, n = setup(ctx)
    m.sql(TYPES_TABLE, database="skynet")
    got = ev(n, connect(m.port) + CHECK_ROWS + """
        local db = G.db
        compare("query", db:query("SELECT * FROM types ORDER BY id"))
        local st = db:prepare("SELECT * FROM types WHERE id >= ? ORDER BY id")
        compare("execute", db:execute(st, 1))
        db:stmt_close(st)
        return bad
    """)
    check(got == [[]], got)
    # parameters of every Lua type round-trip through a prepared INSERT
    got = ev(n, r"""
        local ffi = require "ffi"
        local db = G.db
        db:query("DROP TABLE IF EXISTS params")
        db:query("CREATE TABLE params (id INT PRIMARY KEY, b BIGINT, u BIGINT UNSIGNED, " ..
                 "f DOUBLE, s BLOB, t TINYINT, n INT, neg BIGINT)")
        local st = db:prepare("INSERT INTO params VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        local big = ffi.new("int64_t", 2) ^ 62 + 7
        local ok = db:execute(st, 1, big, ffi.new("uint64_t", 18446744073709551615ULL), 0.125,
            "\0\255bin", true, nil, -9007199254740991)
        local rows = db:query("SELECT * FROM params")
        local r = rows[1]
        return ok.affected_rows, tostring(r.b), tostring(r.u), r.f, r.s == "\0\255bin", r.t,
            r.n == nil, r.neg
    """)
    check(got == [1, "4611686018427387911LL", "18446744073709551615ULL", 0.125, True, 1, True,
                  -9007199254740991], got)


def test_multiple_result_sets_and_errors(ctx):
    m, n = setup(ctx)
    got = ev(n, connect(m.port) + """
        local db = G.db
        db:query("DROP TABLE IF EXISTS cats")
        local c = db:query("CREATE TABLE cats (id SERIAL PRIMARY KEY, name VARCHAR(5))")
        local ins = db:query("INSERT INTO cats (name) VALUES ('Bob'), (''), (NULL)")
        local multi = db:query("SELECT id, name FROM cats ORDER BY id; SELECT COUNT(*) AS n FROM cats;"
            .. " UPDATE cats SET name = 'Tom' WHERE id = 1")
        local bad = db:query("SELECT * FROM notexisttable")
        local half = db:query("SELECT 1 AS one; SELECT * FROM notexisttable; SELECT 2")
        local dup = db:query("INSERT INTO cats (id, name) VALUES (1, 'x')")
        return c.affected_rows, c.server_status ~= nil, ins.affected_rows, ins.insert_id,
            multi.mulitresultset, #multi, multi[1][1].name, multi[1][2].name, multi[1][3].name,
            multi[2][1].n, multi[3].affected_rows, bad, half.mulitresultset, half.badresult,
            half[1][1].one, half.errno, half.sqlstate, dup.errno, dup.sqlstate
    """)
    check(got[:8] == [0, True, 3, 1, True, 3, "Bob", ""], got)
    check(got[8] is None and got[9] == 3 and got[10] == 1, got)
    check(got[11] == {"badresult": True, "errno": 1146, "sqlstate": "42S02",
                      "err": "Table 'skynet.notexisttable' doesn't exist"}, got[11])
    check(got[12:] == [True, True, 1, 1146, "42S02", 1062, "23000"], got)
    # a stored procedure through a prepared CALL: its rows, then the OK of the CALL
    got = ev(n, """
        local db = G.db
        db:query("DROP PROCEDURE IF EXISTS get_cat")
        db:query("CREATE PROCEDURE get_cat(IN p_id INT) BEGIN SELECT * FROM cats WHERE id = p_id; END")
        local st = db:prepare("CALL get_cat(?)")
        local r = db:execute(st, 1)
        return r.mulitresultset, r[1][1].name, r[2].affected_rows
    """)
    check(got == [True, "Tom", 0], got)


def test_prepare_execute_stmt_close(ctx):
    m, n = setup(ctx)
    got = ev(n, connect(m.port) + """
        local db = G.db
        local st = db:prepare("SELECT ? + 1 AS v, ? AS s")
        local a = db:execute(st, 41, "x")
        local b = db:execute(st, 1.5, "y")
        local reset = db:stmt_reset(st)
        db:stmt_close(st)
        local gone = db:execute(st, 1, "z")
        local bad = db:prepare("SELEKT nothing")
        return st.prepare_id > 0, st.param_count, st.field_count, #st.params, st.fields[1].name,
            a[1].v, a[1].s, b[1].v, b[1].s, reset.affected_rows, gone.badresult, gone.errno,
            bad.badresult, bad.errno, bad.sqlstate
    """)
    check(got == [True, 2, 2, 2, "v", 42, "x", 2.5, "y", 0, True, 1243, True, 1064, "42000"], got)
    # NULLs past the first byte of the null bitmap
    got = ev(n, """
        local marks = {}
        for i = 1, 20 do marks[i] = "? AS c" .. i end
        local st = G.db:prepare("SELECT " .. table.concat(marks, ", "))
        local args = {}
        for i = 1, 20 do if i ~= 9 and i ~= 17 and i ~= 20 then args[i] = i end end
        local row = G.db:execute(st, unpack(args, 1, 20))[1]
        local out = {}
        for i = 1, 20 do out[i] = row["c" .. i] == nil and "nil" or row["c" .. i] end
        return out
    """)
    check(got == [[1, 2, 3, 4, 5, 6, 7, 8, "nil", 10, 11, 12, 13, 14, 15, 16, "nil", 18, 19, "nil"]],
          got)
    raises(n, "return G.db:execute({ prepare_id = 1, param_count = 2 }, 1)",
           "statement has 2 parameters, execute got 1")
    raises(n, "return G.db:execute('nope')", "execute needs a prepared statement")
    raises(n, 'local st = G.db:prepare("SELECT ?") return G.db:execute(st, {})',
           "cannot send a table")
    check(ev(n, "return G.db:ping(), G.db:query('SELECT 7 AS x')[1].x") == [True, 7], "usable")


def test_quote_sql_str_and_compact_arrays(ctx):
    m, n = setup(ctx)
    got = ev(n, connect(m.port) + r"""
        local nasty = "\\mysql escape %string test'test\"\0\b\n\r\t\26 end"
        local q = mysql.quote_sql_str(nasty)
        local row = G.db:query("SELECT " .. q .. " AS s")[1]
        G.db:set_compact_arrays(true)
        local compact = G.db:query("SELECT 1, 'two', NULL, 4")[1]
        return mysql.quote_sql_str([[\mysql escape %string test'test"]]), row.s == nasty, compact
    """)
    check(got[0] == "'\\\\mysql escape %string test\\'test\\\"'", got[0])
    check(got[1] is True and got[2] == [1, "two", None, 4], got)


def test_on_connect_charset_and_max_packet_size(ctx):
    m, n = setup(ctx)
    got = ev(n, connect(m.port, """, charset = "latin1", max_packet_size = 4096,
        on_connect = function(db)
            G.connects = (G.connects or 0) + 1
            db:query("SET @who = 'on_connect'")
        end""") + """
        local r = G.db:query("SELECT @who AS who, @@character_set_client AS cs")[1]
        local big = G.db:query("SELECT REPEAT('x', 10000) AS big")
        local after = G.db:query("SELECT LENGTH(REPEAT('y', 100)) AS n")[1].n
        return G.connects, r.who, r.cs, big.badresult, big.err, after
    """)
    check(got == [1, "on_connect", "latin1", True, "packet size too big: 10003", 100], got)
    # max_packet_size bounds what the server sends, not what we send
    got = ev(n, connect(m.port, ", charset = 'utf8mb4'") + """
        local s = string.rep("z", 300000)
        return G.db:query("SELECT LENGTH('" .. s .. "') AS n, @@character_set_client AS cs")[1]
    """)
    check(got == [{"n": 300000, "cs": "utf8mb4"}], got)
    raises(n, connect(m.port, ", charset = 'klingon'"), "unknown charset klingon")
    # payloads past 16 MiB - 1 travel as several packets, both ways
    got = ev(n, connect(m.port, ", max_packet_size = 32 * 1024 * 1024") + """
        local s = string.rep("abcdefgh", 2100000) -- 16.8 MB
        local st = G.db:prepare("SELECT ? AS s, LENGTH(?) AS n")
        local e = G.db:execute(st, s, s)[1]
        return e.n, e.s == s, G.db:query("SELECT 1 AS one")[1].one
    """, timeout=60)
    check(got == [16800000, True, 1], got)


def test_disconnect_kill_and_server_restart(ctx):
    m, n = setup(ctx)
    ev(n, connect(m.port, """, on_connect = function(db)
            G.connects = (G.connects or 0) + 1
        end"""))
    # the server kills our connection: the call in flight fails, the next call reconnects
    cid = ev(n, "return G.db:query('SELECT CONNECTION_ID() AS id')[1].id")[0]
    ev(n, """
        skynet.fork(function()
            local ok, err = pcall(G.db.query, G.db, "SELECT SLEEP(20)")
            G.inflight = { ok, tostring(err) }
        end)
    """)
    time.sleep(0.3)
    m.sql(f"KILL {cid}")
    got = wait_for(lambda: ev(n, "return G.inflight")[0], 10, "the in-flight query to fail")
    check(got[0] is False and "socket" in got[1], got)
    got = ev(n, "return G.db:query('SELECT 5 AS x')[1].x, G.connects")
    check(got == [5, 2], got)
    # a restart of the server: same story
    ev(n, """
        G.inflight = nil
        skynet.fork(function()
            local ok, err = pcall(G.db.query, G.db, "SELECT SLEEP(20)")
            G.inflight = { ok, tostring(err) }
        end)
    """)
    time.sleep(0.3)
    m.restart()
    got = wait_for(lambda: ev(n, "return G.inflight")[0], 10, "the in-flight query to fail")
    check(got[0] is False, got)
    got = ev(n, "return G.db:query('SELECT 6 AS x')[1].x, G.connects")
    check(got == [6, 3], got)
    ev(n, "G.db:disconnect()")
    raises(n, "return G.db:query('SELECT 1')", "")
    raises(n, 'G.x = mysql.connect { host = "127.0.0.1", port = 1, user = "nopw" }', "socket")


def test_password_authentication(ctx):
    m, n = setup(ctx)
    # mysql_native_password (MariaDB's default) with the scramble from skynet.crypt.sha1
    got = ev(n, connect(m.port, f', password = "{MARIADB_PASSWORD}"', user="root") +
             "return G.db:query('SELECT CURRENT_USER() AS u')[1].u")
    check(got == ["root@127.0.0.1"], got)
    raises(n, connect(m.port, ', password = "wrong"', user="root"), "Error: socket")
    n.wait_log(r"auth failed.*errno:1045, msg:Access denied for user 'root'@'127.0.0.1'")
    # no password where one is needed: the server's own refusal
    start = len(n.text())
    raises(n, connect(m.port, user="root"), "Error: socket")
    n.wait_log(r"auth failed.*errno:1045.*using password: NO", start=start)
    # the connection made first is unhurt by the failed logins
    check(ev(n, "return G.db:query('SELECT 1 AS x')[1].x") == [1], "the good connection is unhurt")


# ------------------------------------------------------------------ scripted servers

def packet(seq, payload):
    return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload


def read_packet(conn):
    head = b""
    while len(head) < 4:
        chunk = conn.recv(4 - len(head))
        if not chunk:
            return None, None
        head += chunk
    n = int.from_bytes(head[:3], "little")
    body = b""
    while len(body) < n:
        chunk = conn.recv(n - len(body))
        if not chunk:
            return None, None
        body += chunk
    return head[3], body


SCRAMBLE = bytes(range(65, 85))  # 20 bytes


def greeting(plugin=b"caching_sha2_password"):
    caps = 0xA2FF | 0x80000 | 0x200000 | 0x8000 | 0x200
    return (b"\x0a" + b"8.0.36-fake\0" + struct.pack("<I", 7) + SCRAMBLE[:8] + b"\0"
            + struct.pack("<H", caps & 0xFFFF) + b"\x2d" + struct.pack("<H", 2)
            + struct.pack("<H", caps >> 16) + bytes([21]) + b"\0" * 10 + SCRAMBLE[8:] + b"\0"
            + plugin + b"\0")


def sha2_token(password, scramble):
    h1 = hashlib.sha256(password).digest()
    h2 = hashlib.sha256(hashlib.sha256(h1).digest() + scramble).digest()
    return bytes(a ^ b for a, b in zip(h1, h2))


OK = b"\x00\x00\x00\x02\x00\x00\x00"


def lenenc_str(b):
    return bytes([len(b)]) + b


def column(name, typ=0xfd):
    return (lenenc_str(b"def") + lenenc_str(b"") * 3 + lenenc_str(name) + lenenc_str(name)
            + b"\x0c" + struct.pack("<HIBHB", 33, 255, typ, 0, 0) + b"\0\0")


def result_one_row(seq, name, value):
    eof = b"\xfe\x00\x00\x02\x00"
    return (packet(seq, b"\x01") + packet(seq + 1, column(name)) + packet(seq + 2, eof)
            + packet(seq + 3, lenenc_str(value)) + packet(seq + 4, eof))


def rsa_keypair(ctx):
    """An RSA key in ctx.tmp (openssl CLI); returns the public key as PEM bytes."""
    key = ctx.path("rsa.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024",
                    "-out", key], check=True, capture_output=True, timeout=60)
    return subprocess.run(["openssl", "pkey", "-in", key, "-pubout"], check=True,
                          capture_output=True, timeout=30).stdout


def rsa_decrypt(ctx, secret):
    r = subprocess.run(["openssl", "pkeyutl", "-decrypt", "-inkey", ctx.path("rsa.pem"),
                        "-pkeyopt", "rsa_padding_mode:oaep"], input=secret, capture_output=True,
                       timeout=30)
    return r.stdout if r.returncode == 0 else None


def test_caching_sha2_password_fast_full_and_switch(ctx):
    n = ctx.ctl_node("mdb")
    seen = {}

    def sha2_server(conn, switch=False, full=False):
        conn.sendall(packet(0, greeting()))
        seq, body = read_packet(conn)
        user_end = body.index(b"\0", 32)
        seen["user"] = body[32:user_end]
        token = body[user_end + 2:user_end + 2 + body[user_end + 1]]
        if switch:  # ask again, with a fresh scramble
            new = bytes(range(97, 117))
            conn.sendall(packet(seq + 1, b"\xfecaching_sha2_password\0" + new + b"\0"))
            seq, token = read_packet(conn)
            seen["switched"] = token == sha2_token(b"pw", new)
            ok = seen["switched"]
        else:
            ok = token == sha2_token(b"pw", SCRAMBLE)
        if full:  # full authentication: the password travels RSA-encrypted
            conn.sendall(packet(seq + 1, b"\x01\x04"))
            seq, req = read_packet(conn)
            seen["key_request"] = req
            conn.sendall(packet(seq + 1, b"\x01" + public_pem))
            seq, secret = read_packet(conn)
            plain = rsa_decrypt(ctx, secret)
            ok = plain == bytes(a ^ b for a, b in zip(b"pw\0", SCRAMBLE))
            seen["full"] = ok
            if ok:
                conn.sendall(packet(seq + 1, OK))
                _, query = read_packet(conn)
                conn.sendall(result_one_row(1, b"q", query[1:]))
                read_packet(conn)
            else:
                conn.sendall(packet(seq + 1, b"\xff\x15\x04#28000Access denied (fake)"))
            return
        if not ok:
            conn.sendall(packet(seq + 1, b"\xff\x15\x04#28000Access denied (fake)"))
            return
        conn.sendall(packet(seq + 1, b"\x01\x03") + packet(seq + 2, OK))
        _, query = read_packet(conn)
        conn.sendall(result_one_row(1, b"q", query[1:]))
        read_packet(conn)

    for mode in ({}, {"switch": True}):
        with fake_server(lambda c: sha2_server(c, **mode)) as fake:
            got = ev(n, f"""
                local db = mysql.connect {{ host = "127.0.0.1", port = {fake.port}, user = "me",
                    password = "pw" }}
                return db:query("hello")[1].q, db:server_ver()
            """)
            check(got == ["hello", "8.0.36-fake"], (mode, got))
            check(seen["user"] == b"me", seen)
    check(seen.get("switched") is True, seen)
    with fake_server(sha2_server) as fake:
        raises(n, f'mysql.connect {{ host = "127.0.0.1", port = {fake.port}, password = "bad" }}',
               "Error: socket")
        n.wait_log(r"auth failed.*errno:1045, msg:Access denied \(fake\),sqlstate:28000")
    # the server's cache is cold: full authentication with its RSA public key
    public_pem = rsa_keypair(ctx)
    with fake_server(lambda c: sha2_server(c, full=True)) as fake:
        got = ev(n, f"""
            local db = mysql.connect {{ host = "127.0.0.1", port = {fake.port}, password = "pw" }}
            return db:query("after full auth")[1].q
        """)
        check(got == ["after full auth"] and seen["key_request"] == b"\x02", (got, seen))
        start = len(n.text())
        raises(n, f'mysql.connect {{ host = "127.0.0.1", port = {fake.port}, password = "bad" }}',
               "Error: socket")
        n.wait_log(r"auth failed.*errno:1045", start=start)
        check(seen["full"] is False, seen)


def test_bad_server_input(ctx):
    n = ctx.ctl_node("mdb")

    def logged_in(conn):
        conn.sendall(packet(0, greeting(b"mysql_native_password")))
        read_packet(conn)
        conn.sendall(packet(2, OK))
        _, q = read_packet(conn)
        return q

    def truncated_result(conn):
        logged_in(conn)
        conn.sendall(result_one_row(1, b"q", b"abcdef")[:-9])  # the row cut, then close

    def garbage(conn):
        logged_in(conn)
        conn.sendall(packet(1, b"\x01") + packet(2, b"\x00garbage"))  # not a column definition
        read_packet(conn)

    def short_row(conn):
        logged_in(conn)
        eof = b"\xfe\x00\x00\x02\x00"
        conn.sendall(packet(1, b"\x01") + packet(2, column(b"q")) + packet(3, eof)
                     + packet(4, b"\x20abc") + packet(5, eof))  # says 32 bytes, has 3
        read_packet(conn)

    def empty(conn):
        logged_in(conn)
        conn.sendall(packet(1, b""))
        read_packet(conn)

    def close_in_handshake(conn):
        conn.sendall(packet(0, greeting(b"mysql_native_password"))[:20])

    def bad_greeting(conn):
        conn.sendall(packet(0, b"\x09old server\0"))
        read_packet(conn)

    for handler, message in [(truncated_result, "socket"), (garbage, "expected a column"),
                             (short_row, "string runs past the end"), (empty, "empty packet")]:
        with fake_server(handler) as fake:
            raises(n, f'G.db = mysql.connect {{ host = "127.0.0.1", port = {fake.port} }}\n'
                      'return G.db:query("x")', message)
    for handler, logged in [(close_in_handshake, r"auth failed"),
                            (bad_greeting, r"auth failed.*unsupported protocol version 9")]:
        with fake_server(handler) as fake:
            raises(n, f'mysql.connect {{ host = "127.0.0.1", port = {fake.port} }}',
                   "Error: socket")
            n.wait_log(logged)
    # a server that never answers a query: the call waits, and fails when the server goes
    release = []

    def silent(conn):
        logged_in(conn)
        wait_for(lambda: release, 10, "test to release the server")

    with fake_server(silent) as fake:
        ev(n, f"""
            G.db = mysql.connect {{ host = "127.0.0.1", port = {fake.port} }}
            skynet.fork(function()
                local ok, err = pcall(G.db.query, G.db, "x")
                G.silent = {{ ok, tostring(err) }}
            end)
        """)
        time.sleep(0.2)
        check(ev(n, "return G.silent") == [None], "still waiting")
        release.append(True)
        got = wait_for(lambda: ev(n, "return G.silent")[0], 10, "the waiting call to fail")
        check(got[0] is False and "socket" in got[1], got)

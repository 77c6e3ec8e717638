/* crypt: Skynet's "skynet.crypt" module (also "crypt"): login-handshake helpers that must give
 * the same bytes as Skynet's. Ciphers and digests (DES, SHA-1, HMAC, MD5, random bytes) come from
 * OpenSSL's libcrypto; the Skynet-specific constructions (hashkey, hmac64, the 64-bit DH group,
 * the padding modes, hex/base64/xor) are written here from their observed behaviour.
 * Pure functions on their arguments; any thread. */

/* DES and the raw MD5 block function have no EVP equivalent that works without OpenSSL 3's legacy
 * provider (DES) or at all (MD5 compression without padding, which hmac64 needs): we use the
 * low-level calls, which OpenSSL 3 keeps but marks deprecated. */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "crypt.h"

#include <lauxlib.h>
#include <lua.h>
#include <openssl/des.h>
#include <openssl/hmac.h>
#include <openssl/md5.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <string.h>

enum { CRYPT_PAD_ISO7816_4 = 0, CRYPT_PAD_PKCS7 = 1 };

/* Scratch space: small results live on the stack, larger ones in a Lua userdata (freed by GC). */
#define CRYPT_STACKBUF 256

static unsigned char *crypt_buffer(lua_State *L, unsigned char *stack, size_t need)
{
    return need <= CRYPT_STACKBUF ? stack : (unsigned char *)lua_newuserdata(L, need);
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t le64(const unsigned char *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void push_le64(lua_State *L, uint64_t v)
{
    unsigned char out[8];
    put_le32(out, (uint32_t)v);
    put_le32(out + 4, (uint32_t)(v >> 32));
    lua_pushlstring(L, (const char *)out, 8);
}

/* The 8-byte string argument `arg`, or a Lua error with Skynet's message. */
static const unsigned char *check8(lua_State *L, int arg, const char *msg)
{
    size_t len;
    const char *s = luaL_checklstring(L, arg, &len);
    if (len != 8)
        luaL_error(L, "%s", msg);
    return (const unsigned char *)s;
}

/* ---- hashkey, hmac64, hmac_hash -------------------------------------------------------- */

/* hashkey: two classic string hashes side by side, djb2 (low word) and JS (high word). */
static void crypt_hash(const unsigned char *s, size_t n, unsigned char out[8])
{
    uint32_t djb = 5381u, js = 1315423911u;
    for (size_t i = 0; i < n; i++) {
        djb = djb * 33u + s[i];
        js ^= (js << 5) + s[i] + (js >> 2);
    }
    put_le32(out, djb);
    put_le32(out + 4, js);
}

static int l_hashkey(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    unsigned char key[8];
    crypt_hash((const unsigned char *)s, n, key);
    lua_pushlstring(L, (const char *)key, 8);
    return 1;
}

/* hmac64: one MD5 compression (no padding, no final addition of the initial state) over a block
 * that repeats x's high word, x's low word, y's high word, y's low word four times; the 64-bit
 * result is (c ^ d) in the low word and (a ^ b) in the high word. */
static void crypt_hmac64(const unsigned char x[8], const unsigned char y[8], unsigned char out[8])
{
    unsigned char block[64];
    for (int i = 0; i < 64; i += 16) {
        memcpy(block + i, x + 4, 4);
        memcpy(block + i + 4, x, 4);
        memcpy(block + i + 8, y + 4, 4);
        memcpy(block + i + 12, y, 4);
    }
    MD5_CTX ctx;
    MD5_Init(&ctx);
    uint32_t a0 = ctx.A, b0 = ctx.B, c0 = ctx.C, d0 = ctx.D;
    MD5_Transform(&ctx, block);
    put_le32(out, (ctx.C - c0) ^ (ctx.D - d0));
    put_le32(out + 4, (ctx.A - a0) ^ (ctx.B - b0));
}

static int l_hmac64(lua_State *L)
{
    const unsigned char *x = check8(L, 1, "Invalid uint64 x");
    const unsigned char *y = check8(L, 2, "Invalid uint64 y");
    unsigned char out[8];
    crypt_hmac64(x, y, out);
    lua_pushlstring(L, (const char *)out, 8);
    return 1;
}

/* hmac64_md5: the real MD5 of x..y repeated three times (48 bytes), folded to 64 bits as
 * (h0 ^ h2, h1 ^ h3). */
static int l_hmac64_md5(lua_State *L)
{
    const unsigned char *x = check8(L, 1, "Invalid uint64 x");
    const unsigned char *y = check8(L, 2, "Invalid uint64 y");
    unsigned char msg[48], h[MD5_DIGEST_LENGTH], out[8];
    for (int i = 0; i < 48; i += 16) {
        memcpy(msg + i, x, 8);
        memcpy(msg + i + 8, y, 8);
    }
    MD5(msg, sizeof msg, h);
    put_le32(out, le32(h) ^ le32(h + 8));
    put_le32(out + 4, le32(h + 4) ^ le32(h + 12));
    lua_pushlstring(L, (const char *)out, 8);
    return 1;
}

/* hmac_hash(key8, text): hmac64 of hashkey(text) keyed by key8. */
static int l_hmac_hash(lua_State *L)
{
    const unsigned char *key = check8(L, 1, "Invalid uint64 key");
    size_t n;
    const char *text = luaL_checklstring(L, 2, &n);
    unsigned char h[8], out[8];
    crypt_hash((const unsigned char *)text, n, h);
    crypt_hmac64(h, key, out);
    lua_pushlstring(L, (const char *)out, 8);
    return 1;
}

/* randomkey: 8 bytes from libcrypto's generator whose XOR is never zero (Skynet's aim; its own
 * `|= 1` misses when the first byte is odd). */
static int l_randomkey(lua_State *L)
{
    unsigned char k[8];
    if (RAND_bytes(k, sizeof k) != 1)
        return luaL_error(L, "randomkey: no randomness available");
    unsigned char x = 0;
    for (int i = 0; i < 8; i++)
        x ^= k[i];
    if (x == 0)
        k[0] ^= 1;
    lua_pushlstring(L, (const char *)k, 8);
    return 1;
}

/* ---- Diffie-Hellman over the prime 2^64 - 59, generator 5 ------------------------------ */

#define CRYPT_DH_P 0xffffffffffffffc5ull
#define CRYPT_DH_G 5u

static uint64_t dh_mulmod(uint64_t a, uint64_t b)
{
    return (uint64_t)(((unsigned __int128)a * b) % CRYPT_DH_P);
}

/* base^e mod P, e >= 1. Like Skynet's, a base above P is reduced first and e == 1 returns it. */
static uint64_t dh_powmod(uint64_t base, uint64_t e)
{
    if (base > CRYPT_DH_P)
        base %= CRYPT_DH_P;
    if (e == 1)
        return base;
    uint64_t r = 1;
    for (int bit = 63; bit >= 0; bit--) {
        r = dh_mulmod(r, r);
        if (e >> bit & 1)
            r = dh_mulmod(r, base);
    }
    return r;
}

static int l_dhexchange(lua_State *L)
{
    uint64_t x = le64(check8(L, 1, "Invalid dh uint64 key"));
    if (x == 0)
        return luaL_error(L, "Can't be 0");
    push_le64(L, dh_powmod(CRYPT_DH_G, x));
    return 1;
}

static int l_dhsecret(lua_State *L)
{
    uint64_t x = le64(check8(L, 1, "Invalid uint64 x"));
    uint64_t y = le64(check8(L, 2, "Invalid uint64 y"));
    if (x == 0 || y == 0)
        return luaL_error(L, "Can't be 0");
    push_le64(L, dh_powmod(x, y));
    return 1;
}

/* ---- DES (ECB, 8-byte key) with Skynet's two padding modes ---------------------------- */

static void des_schedule(lua_State *L, DES_key_schedule *ks)
{
    size_t n;
    const char *key = luaL_checklstring(L, 1, &n);
    if (n != 8)
        luaL_error(L, "Invalid key size %d, need 8 bytes", (int)n);
    DES_cblock k;
    memcpy(k, key, 8);
    DES_set_key_unchecked(&k, ks);
}

static int check_padding(lua_State *L, int arg)
{
    lua_Integer mode = luaL_optinteger(L, arg, CRYPT_PAD_ISO7816_4);
    if (mode != CRYPT_PAD_ISO7816_4 && mode != CRYPT_PAD_PKCS7)
        luaL_error(L, "Invalid padding mode %d", (int)mode);
    return (int)mode;
}

static void des_blocks(DES_key_schedule *ks, const unsigned char *in, unsigned char *out, size_t n,
                       int enc)
{
    for (size_t i = 0; i < n; i += 8)
        DES_ecb_encrypt((const_DES_cblock *)(in + i), (DES_cblock *)(out + i), ks, enc);
}

/* desencode(key, text [, padding]): always adds 1..8 bytes of padding. */
static int l_desencode(lua_State *L)
{
    DES_key_schedule ks;
    des_schedule(L, &ks);
    size_t n;
    const unsigned char *text = (const unsigned char *)luaL_checklstring(L, 2, &n);
    int mode = check_padding(L, 3);
    size_t full = n & ~(size_t)7, total = full + 8;
    unsigned char stack[CRYPT_STACKBUF], last[8];
    unsigned char *out = crypt_buffer(L, stack, total);
    size_t rest = n - full, pad = 8 - rest;
    memcpy(last, text + full, rest);
    if (mode == CRYPT_PAD_PKCS7) {
        memset(last + rest, (int)pad, pad);
    } else {
        last[rest] = 0x80;
        memset(last + rest + 1, 0, pad - 1);
    }
    des_blocks(&ks, text, out, full, DES_ENCRYPT);
    des_blocks(&ks, last, out + full, 8, DES_ENCRYPT);
    lua_pushlstring(L, (const char *)out, total);
    return 1;
}

/* Length of the padding at the end of a decrypted text, or 0 when it is malformed. */
static size_t des_padding(const unsigned char *p, size_t n, int mode)
{
    if (mode == CRYPT_PAD_PKCS7) {
        size_t pad = p[n - 1];
        if (pad < 1 || pad > 8)
            return 0;
        for (size_t i = n - pad; i < n; i++)
            if (p[i] != pad)
                return 0;
        return pad;
    }
    for (size_t pad = 1; pad <= 8; pad++) {
        unsigned char c = p[n - pad];
        if (c == 0x80)
            return pad;
        if (c != 0)
            return 0;
    }
    return 0;
}

static int l_desdecode(lua_State *L)
{
    DES_key_schedule ks;
    des_schedule(L, &ks);
    size_t n;
    const unsigned char *text = (const unsigned char *)luaL_checklstring(L, 2, &n);
    int mode = check_padding(L, 3);
    if (n == 0 || (n & 7))
        return luaL_error(L, "Invalid des crypt text length %d", (int)n);
    unsigned char stack[CRYPT_STACKBUF];
    unsigned char *out = crypt_buffer(L, stack, n);
    des_blocks(&ks, text, out, n, DES_DECRYPT);
    size_t pad = des_padding(out, n, mode);
    if (pad == 0)
        return luaL_error(L, "Invalid des crypt text");
    lua_pushlstring(L, (const char *)out, n - pad);
    return 1;
}

/* ---- hex, base64, xor ---------------------------------------------------------------- */

static const char crypt_hexdigits[] = "0123456789abcdef";

static int l_hexencode(lua_State *L)
{
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    unsigned char stack[CRYPT_STACKBUF];
    unsigned char *out = crypt_buffer(L, stack, n * 2);
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = (unsigned char)crypt_hexdigits[s[i] >> 4];
        out[2 * i + 1] = (unsigned char)crypt_hexdigits[s[i] & 15];
    }
    lua_pushlstring(L, (const char *)out, n * 2);
    return 1;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int l_hexdecode(lua_State *L)
{
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    if (n & 1)
        return luaL_error(L, "Invalid hex text size %d", (int)n);
    unsigned char stack[CRYPT_STACKBUF];
    unsigned char *out = crypt_buffer(L, stack, n / 2);
    for (size_t i = 0; i < n; i += 2) {
        int hi = hex_value(s[i]), lo = hex_value(s[i + 1]);
        if (hi < 0 || lo < 0)
            return luaL_error(L, "Invalid hex text");
        out[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    lua_pushlstring(L, (const char *)out, n / 2);
    return 1;
}

static const char crypt_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int l_base64encode(lua_State *L)
{
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    size_t total = (n + 2) / 3 * 4;
    unsigned char stack[CRYPT_STACKBUF];
    unsigned char *out = crypt_buffer(L, stack, total), *o = out;
    for (size_t i = 0; i < n; i += 3) {
        size_t left = n - i;
        uint32_t v = (uint32_t)s[i] << 16 | (left > 1 ? (uint32_t)s[i + 1] << 8 : 0) |
                     (left > 2 ? s[i + 2] : 0);
        *o++ = (unsigned char)crypt_b64[v >> 18];
        *o++ = (unsigned char)crypt_b64[v >> 12 & 63];
        *o++ = left > 1 ? (unsigned char)crypt_b64[v >> 6 & 63] : '=';
        *o++ = left > 2 ? (unsigned char)crypt_b64[v & 63] : '=';
    }
    lua_pushlstring(L, (const char *)out, total);
    return 1;
}

/* The 6-bit value of a base64 digit; -2 for '=', -1 for anything else (skipped, as Skynet does:
 * line breaks and spaces in the text are ignored). */
static int b64_value(unsigned char c)
{
    const char *p = c ? strchr(crypt_b64, c) : NULL;
    if (p)
        return (int)(p - crypt_b64);
    return c == '=' ? -2 : -1;
}

/* Decode one group of four digits into out; returns the bytes written, or -1 if malformed. */
static int b64_group(const int d[4], unsigned char *out)
{
    int pads = (d[3] == -2) + (d[2] == -2);
    if (d[0] < 0 || d[1] < 0 || (d[2] == -2 && d[3] != -2))
        return -1;
    if (pads == 2 && (d[1] & 15) != 0)
        return -1;
    if (pads == 1 && (d[2] & 3) != 0)
        return -1;
    uint32_t v = (uint32_t)d[0] << 18 | (uint32_t)d[1] << 12 |
                 (uint32_t)(d[2] < 0 ? 0 : d[2]) << 6 | (uint32_t)(d[3] < 0 ? 0 : d[3]);
    out[0] = (unsigned char)(v >> 16);
    out[1] = (unsigned char)(v >> 8);
    out[2] = (unsigned char)v;
    return 3 - pads;
}

static int l_base64decode(lua_State *L)
{
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    unsigned char stack[CRYPT_STACKBUF];
    unsigned char *out = crypt_buffer(L, stack, (n + 3) / 4 * 3);
    size_t o = 0, i = 0;
    while (i < n) {
        int d[4], got = 0;
        while (got < 4 && i < n) {
            int v = b64_value(s[i++]);
            if (v != -1)
                d[got++] = v;
        }
        if (got == 0)
            break;
        int w = got == 4 ? b64_group(d, out + o) : -1;
        if (w < 0)
            return luaL_error(L, "Invalid base64 text");
        o += (size_t)w;
    }
    lua_pushlstring(L, (const char *)out, o);
    return 1;
}

/* xor_str(text, key): text XOR the key repeated. */
static int l_xor_str(lua_State *L)
{
    size_t n, kn;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    const unsigned char *k = (const unsigned char *)luaL_checklstring(L, 2, &kn);
    if (kn == 0)
        return luaL_error(L, "Empty key");
    unsigned char stack[CRYPT_STACKBUF];
    unsigned char *out = crypt_buffer(L, stack, n);
    for (size_t i = 0; i < n; i++)
        out[i] = s[i] ^ k[i % kn];
    lua_pushlstring(L, (const char *)out, n);
    return 1;
}

/* ---- SHA-1 ------------------------------------------------------------------------------ */

static int l_sha1(lua_State *L)
{
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    unsigned char h[SHA_DIGEST_LENGTH];
    SHA1(s, n, h);
    lua_pushlstring(L, (const char *)h, sizeof h);
    return 1;
}

static int l_hmac_sha1(lua_State *L)
{
    size_t kn, n;
    const char *key = luaL_checklstring(L, 1, &kn);
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 2, &n);
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned int hn = 0;
    if (!HMAC(EVP_sha1(), key, (int)kn, s, n, h, &hn))
        return luaL_error(L, "hmac_sha1 failed");
    lua_pushlstring(L, (const char *)h, hn);
    return 1;
}

int luaopen_skynet_crypt(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"hashkey", l_hashkey},
        {"randomkey", l_randomkey},
        {"desencode", l_desencode},
        {"desdecode", l_desdecode},
        {"hexencode", l_hexencode},
        {"hexdecode", l_hexdecode},
        {"hmac64", l_hmac64},
        {"hmac64_md5", l_hmac64_md5},
        {"dhexchange", l_dhexchange},
        {"dhsecret", l_dhsecret},
        {"base64encode", l_base64encode},
        {"base64decode", l_base64decode},
        {"sha1", l_sha1},
        {"hmac_sha1", l_hmac_sha1},
        {"hmac_hash", l_hmac_hash},
        {"xor_str", l_xor_str},
        {NULL, NULL},
    };
    lua_createtable(L, 0, 17);
    luaL_register(L, NULL, funcs);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, CRYPT_PAD_ISO7816_4);
    lua_setfield(L, -2, "iso7816_4");
    lua_pushinteger(L, CRYPT_PAD_PKCS7);
    lua_setfield(L, -2, "pkcs7");
    lua_setfield(L, -2, "padding");
    return 1;
}

/* "crypt": Skynet's older name for the same module (test/testsha.lua uses it). */
int luaopen_crypt_alias(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "skynet.crypt");
    lua_call(L, 1, 1);
    return 1;
}

/* The RFC 6455 opening handshake's key check and accept value (SHA-1 and base64 from nettle). */
#include <string.h>

#include <nettle/base64.h>
#include <nettle/sha1.h>

#include "push/push_hub.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" /* RFC 6455 section 1.3 */

int push_ws_key_valid(const char *key) {
    size_t n = strlen(key);
    /* 16 bytes are 24 base64 characters, the last two "==" */
    if (n != 24 || key[22] != '=' || key[23] != '=') return 0;
    struct base64_decode_ctx ctx;
    uint8_t raw[BASE64_DECODE_LENGTH(24)];
    size_t got = sizeof raw;
    base64_decode_init(&ctx);
    if (!base64_decode_update(&ctx, &got, raw, n, key) || !base64_decode_final(&ctx)) return 0;
    return got == 16;
}

void push_ws_accept(const char *key, char out[29]) {
    struct sha1_ctx ctx;
    uint8_t digest[SHA1_DIGEST_SIZE];
    sha1_init(&ctx);
    sha1_update(&ctx, strlen(key), (const uint8_t *)key);
    sha1_update(&ctx, sizeof WS_GUID - 1, (const uint8_t *)WS_GUID);
    sha1_digest(&ctx, sizeof digest, digest);
    base64_encode_raw(out, sizeof digest, digest); /* 20 bytes -> 28 characters */
    out[BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE)] = '\0';
}

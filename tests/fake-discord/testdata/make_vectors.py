"""Computes the transport-encryption test vectors with Python's `cryptography` package,
independently of the Rust crates the fake server uses."""
import struct
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

def rotl(v, c):
    return ((v << c) & 0xffffffff) | (v >> (32 - c))

def hchacha20(key, nonce16):
    # RFC 8439 quarter rounds; HChaCha20 outputs words 0..3 and 12..15 without the final add.
    s = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]
    s += list(struct.unpack('<8I', key)) + list(struct.unpack('<4I', nonce16))
    def qr(a, b, c, d):
        s[a] = (s[a] + s[b]) & 0xffffffff; s[d] = rotl(s[d] ^ s[a], 16)
        s[c] = (s[c] + s[d]) & 0xffffffff; s[b] = rotl(s[b] ^ s[c], 12)
        s[a] = (s[a] + s[b]) & 0xffffffff; s[d] = rotl(s[d] ^ s[a], 8)
        s[c] = (s[c] + s[d]) & 0xffffffff; s[b] = rotl(s[b] ^ s[c], 7)
    for _ in range(10):
        qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15)
        qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14)
    return struct.pack('<8I', *(s[0:4] + s[12:16]))

def xchacha_encrypt(key, nonce24, pt, aad):
    sub = hchacha20(key, nonce24[:16])
    return ChaCha20Poly1305(sub).encrypt(b'\0\0\0\0' + nonce24[16:], pt, aad)

# draft-irtf-cfrg-xchacha-03 section 2.2.1 HChaCha20 test vector
k = bytes(range(32))
n = bytes.fromhex('000000090000004a0000000031415927')
assert hchacha20(k, n).hex() == '82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc'

key = bytes(range(32))
header = bytes.fromhex('80780001000003c000000009')
counter = bytes.fromhex('01020304')
pt = b'acoustic opus frame'
aes = AESGCM(key).encrypt(counter + bytes(8), pt, header)
xc = xchacha_encrypt(key, counter + bytes(20), pt, header)
open('aes_packet.hex', 'w').write((header + aes + counter).hex() + '\n')
open('xchacha_packet.hex', 'w').write((header + xc + counter).hex() + '\n')

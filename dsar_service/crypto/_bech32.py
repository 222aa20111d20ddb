"""Bech32 (BIP 173) decoding and encoding, as age uses it for `age1…` recipients.

age's variant has no 90-character limit and uses the original Bech32 checksum (not Bech32m).
Errors say what is wrong with the string, never what the string is.
"""

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_VALUES = {char: value for value, char in enumerate(_CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


class Bech32Error(ValueError):
    """The string is not valid Bech32; the message says why, without repeating the string."""


def _polymod(values: list[int]) -> int:
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for i, generator in enumerate(_GENERATOR):
            if (top >> i) & 1:
                checksum ^= generator
    return checksum


def _expand_hrp(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data: list[int], from_bits: int, to_bits: int, pad: bool) -> list[int]:
    accumulator = 0
    bits = 0
    out: list[int] = []
    max_value = (1 << to_bits) - 1
    for value in data:
        accumulator = (accumulator << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((accumulator >> bits) & max_value)
    if pad:
        if bits:
            out.append((accumulator << (to_bits - bits)) & max_value)
    elif bits >= from_bits or (accumulator << (to_bits - bits)) & max_value:
        raise Bech32Error("bech32 data has invalid padding")
    return out


def decode(text: str) -> tuple[str, bytes]:
    """Split a Bech32 string into its (lower-case) human-readable part and its data bytes."""
    if text.lower() != text and text.upper() != text:
        raise Bech32Error("bech32 string mixes upper and lower case")
    if any(ord(c) < 33 or ord(c) > 126 for c in text):
        raise Bech32Error("bech32 string has characters outside printable ASCII")
    text = text.lower()
    separator = text.rfind("1")
    if separator < 1 or separator + 7 > len(text):
        raise Bech32Error("bech32 string has no human-readable part or is too short")
    hrp, encoded = text[:separator], text[separator + 1 :]
    try:
        values = [_VALUES[c] for c in encoded]
    except KeyError:
        raise Bech32Error("bech32 string has characters outside the bech32 alphabet") from None
    if _polymod(_expand_hrp(hrp) + values) != 1:
        raise Bech32Error("bech32 checksum is wrong (mistyped or truncated key?)")
    return hrp, bytes(_convert_bits(values[:-6], 5, 8, pad=False))


def encode(hrp: str, data: bytes) -> str:
    """Encode `data` under the human-readable part `hrp` (lower-case output)."""
    values = _convert_bits(list(data), 8, 5, pad=True)
    polymod = _polymod([*_expand_hrp(hrp), *values, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[v] for v in values + checksum)

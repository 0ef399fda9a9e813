//! The key's checksum: CRC-32 of everything before it, in base62.

use super::format::CHECKSUM_LEN;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The checksum of everything before it: CRC-32 (IEEE) of the ASCII bytes,
/// in base62 (`0-9A-Za-z`), left-padded with `0` to 6 characters.
///
/// ```
/// // The checksum of `sk_live_` followed by 32 random characters is appended
/// // to them to make the key.
/// let body = "sk_live_0123456789abcdefghijABCDEFGHIJ";
/// let checksum = tollgate::key::format::checksum(body);
/// assert_eq!(checksum.len(), 6);
/// assert_eq!(tollgate::key::format::checksum(body), checksum);
/// ```
pub fn checksum(body: &str) -> String {
    let digits = checksum_digits(body.as_bytes());
    digits.iter().map(|&b| char::from(b)).collect()
}

/// CRC-32 (IEEE, reflected polynomial `0xEDB88320`), one byte at a time:
/// keys are short, and the parser folds each byte in as it checks it.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut index = 0;
    while index < 256 {
        let mut value = index as u32;
        let mut bit = 0;
        while bit < 8 {
            value = if value & 1 == 1 {
                (value >> 1) ^ 0xEDB8_8320
            } else {
                value >> 1
            };
            bit += 1;
        }
        table[index] = value;
        index += 1;
    }
    table
};

/// Folds `byte` into a running CRC-32 (start with `!0`, finish with `!`).
#[inline(always)]
pub(super) fn crc_step(crc: u32, byte: u8) -> u32 {
    CRC_TABLE[((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8)
}

fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0, |crc, &byte| crc_step(crc, byte))
}

fn checksum_digits(body: &[u8]) -> [u8; CHECKSUM_LEN] {
    checksum_of_crc(crc32(body))
}

/// The checksum characters of a CRC-32 value.
pub(super) fn checksum_of_crc(crc: u32) -> [u8; CHECKSUM_LEN] {
    let mut value = crc;
    let mut digits = [b'0'; CHECKSUM_LEN];
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[(value % 62) as usize];
        value /= 62;
    }
    digits
}

pub(crate) fn base62_char(random: u8) -> Option<u8> {
    // 248 = 4 × 62: rejecting bytes above keeps every character equally likely.
    (random < 248).then(|| BASE62[usize::from(random % 62)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_an_independent_crc32() {
        // The standard CRC-32 check value: "123456789" gives 0xCBF43926,
        // which is 3jZRME in base62 (0-9A-Za-z), as Python's zlib.crc32 agrees.
        assert_eq!(checksum("123456789"), "3jZRME");
        // A small CRC is left-padded with zeros: CRC-32 of the empty input is 0.
        assert_eq!(checksum(""), "000000");
    }
}

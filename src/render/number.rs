//! Numbers as response header values (`Retry-After`, `grpc-status`, the
//! `x-ratelimit-*` values), written without the allocations
//! `HeaderValue::from` makes.

use http::HeaderValue;

/// `number` as a header value: those under 100 (a refusal's usual
/// `Retry-After`) from a static table, allocating nothing; larger ones in
/// one allocation, where `HeaderValue::from` takes two.
pub(crate) fn number_value(number: u64) -> HeaderValue {
    const PAIRS: &str = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";
    match usize::try_from(number) {
        Ok(small @ 0..10) => HeaderValue::from_static(&PAIRS[small * 2 + 1..small * 2 + 2]),
        Ok(small @ 10..100) => HeaderValue::from_static(&PAIRS[small * 2..small * 2 + 2]),
        // Copied into a buffer of exactly its length, which `Bytes` keeps
        // without a shared header of its own.
        _ => HeaderValue::from_maybe_shared(bytes::Bytes::copy_from_slice(
            itoa::Buffer::new().format(number).as_bytes(),
        ))
        .unwrap_or_else(|_| HeaderValue::from(number)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_the_values_http_makes_of_them() {
        for number in [0, 7, 9, 10, 42, 99, 100, 999, 86_400, u64::MAX] {
            assert_eq!(number_value(number), HeaderValue::from(number), "{number}");
        }
    }
}

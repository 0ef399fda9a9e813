//! A refusal's message made of text and numbers in one allocation of its
//! exact size, without the formatting machinery: every refusal pays for
//! its message, and `format!` costs it about a thousand instructions.

/// One piece of a message.
#[derive(Clone, Copy)]
pub(crate) enum Piece<'a> {
    Text(&'a str),
    Number(u64),
}

/// How many decimal digits `number` has.
#[inline]
pub(crate) fn digits(number: u64) -> usize {
    number.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// `pieces` one after the other.
pub(crate) fn sentence(pieces: &[Piece<'_>]) -> String {
    let len = pieces
        .iter()
        .map(|piece| match piece {
            Piece::Text(text) => text.len(),
            Piece::Number(number) => digits(*number),
        })
        .sum();
    let mut out = String::with_capacity(len);
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Number(number) => out.push_str(itoa::Buffer::new().format(*number)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_make_the_sentence_format_would() {
        let powers = (0..20).flat_map(|power| {
            let at = 10u64.pow(power);
            [at - 1, at]
        });
        for number in powers.chain([86_400, u64::MAX]) {
            let made = sentence(&[
                Piece::Text("Retry after "),
                Piece::Number(number),
                Piece::Text(" seconds."),
            ]);
            assert_eq!(made, format!("Retry after {number} seconds."));
            assert_eq!(digits(number), number.to_string().len());
            assert_eq!(made.capacity(), made.len(), "one allocation of its size");
        }
    }
}

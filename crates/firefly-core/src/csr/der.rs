//! A strict DER reader: definite, minimal lengths; minimal INTEGERs; canonical BOOLEANs; bounded
//! nesting. x509-parser accepts some BER, so every request passes through here first; performs no I/O.

/// Why bytes are not strict DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DerViolation {
    /// The input ends inside an element.
    Truncated {
        /// Byte offset of the element.
        offset: usize,
    },
    /// Indefinite length (BER), not allowed in DER.
    IndefiniteLength {
        /// Byte offset of the element.
        offset: usize,
    },
    /// A length, INTEGER or BOOLEAN not in its one DER form.
    NonMinimal {
        /// Byte offset of the element.
        offset: usize,
        /// What is not minimal.
        what: &'static str,
    },
    /// The high-tag-number form, which no request element uses.
    UnsupportedTag {
        /// Byte offset of the element.
        offset: usize,
    },
    /// Elements nested deeper than any request needs.
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// Bytes after the outermost element.
    TrailingBytes {
        /// How many.
        count: usize,
    },
}

impl std::fmt::Display for DerViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Truncated { offset } => write!(
                f,
                "truncated DER: element at byte {offset} runs past the end"
            ),
            Self::IndefiniteLength { offset } => {
                write!(
                    f,
                    "BER indefinite length at byte {offset}; only DER is accepted"
                )
            }
            Self::NonMinimal { offset, what } => {
                write!(f, "non-minimal DER {what} at byte {offset}")
            }
            Self::UnsupportedTag { offset } => {
                write!(f, "high-tag-number form at byte {offset} is not expected")
            }
            Self::TooDeep { max } => write!(f, "DER nesting deeper than {max} levels"),
            Self::TrailingBytes { count } => {
                write!(f, "{count} bytes of trailing data after the DER structure")
            }
        }
    }
}

/// One element: its tag byte, its contents, and where it starts.
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    /// The identifier octet.
    pub tag: u8,
    /// The contents octets.
    pub content: &'a [u8],
    /// The whole element (header and contents).
    pub raw: &'a [u8],
}

impl Tlv<'_> {
    /// True for constructed encodings (SEQUENCE, SET, explicit tags).
    pub fn is_constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }
}

/// Reads one element from the front of `input` (at absolute `offset`, for messages).
///
/// # Errors
/// Truncation, indefinite or non-minimal lengths, high tag numbers.
pub fn read_tlv(input: &[u8], offset: usize) -> Result<(Tlv<'_>, &[u8]), DerViolation> {
    let truncated = DerViolation::Truncated { offset };
    let (&tag, rest) = input.split_first().ok_or(truncated.clone())?;
    if tag & 0x1f == 0x1f {
        return Err(DerViolation::UnsupportedTag { offset });
    }
    let (&first, mut rest) = rest.split_first().ok_or(truncated.clone())?;
    let len = if first < 0x80 {
        usize::from(first)
    } else if first == 0x80 {
        return Err(DerViolation::IndefiniteLength { offset });
    } else {
        let n = usize::from(first & 0x7f);
        // Four length octets address 4 GiB, far beyond the size cap applied before decoding.
        if n > 4 || rest.len() < n {
            return Err(truncated);
        }
        let (bytes, after) = rest.split_at(n);
        rest = after;
        if bytes[0] == 0 {
            return Err(DerViolation::NonMinimal {
                offset,
                what: "length",
            });
        }
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        if len < 0x80 {
            return Err(DerViolation::NonMinimal {
                offset,
                what: "length",
            });
        }
        len
    };
    if rest.len() < len {
        return Err(truncated);
    }
    let header_len = input.len() - rest.len();
    let (content, after) = rest.split_at(len);
    Ok((
        Tlv {
            tag,
            content,
            raw: &input[..header_len + len],
        },
        after,
    ))
}

/// Reads every element of a constructed element's contents.
///
/// # Errors
/// As [`read_tlv`].
pub fn children(content: &[u8], base_offset: usize) -> Result<Vec<Tlv<'_>>, DerViolation> {
    let mut out = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let offset = base_offset + (content.len() - rest.len());
        let (tlv, after) = read_tlv(rest, offset)?;
        out.push(tlv);
        rest = after;
    }
    Ok(out)
}

/// Checks that `input` is exactly one strictly DER-encoded element, recursively.
///
/// # Errors
/// The first [`DerViolation`] found.
pub fn check_strict(input: &[u8], max_depth: usize) -> Result<(), DerViolation> {
    let (tlv, rest) = read_tlv(input, 0)?;
    if !rest.is_empty() {
        return Err(DerViolation::TrailingBytes { count: rest.len() });
    }
    check_element(&tlv, 0, 1, max_depth)
}

fn check_element(
    tlv: &Tlv<'_>,
    offset: usize,
    depth: usize,
    max_depth: usize,
) -> Result<(), DerViolation> {
    if depth > max_depth {
        return Err(DerViolation::TooDeep { max: max_depth });
    }
    let content_offset = offset + (tlv.raw.len() - tlv.content.len());
    if tlv.is_constructed() {
        let mut rest = tlv.content;
        while !rest.is_empty() {
            let child_offset = content_offset + (tlv.content.len() - rest.len());
            let (child, after) = read_tlv(rest, child_offset)?;
            check_element(&child, child_offset, depth + 1, max_depth)?;
            rest = after;
        }
        return Ok(());
    }
    match tlv.tag {
        // BOOLEAN
        0x01 if tlv.content != [0x00] && tlv.content != [0xff] => {
            return Err(DerViolation::NonMinimal {
                offset,
                what: "BOOLEAN",
            });
        }
        // INTEGER
        0x02 => match tlv.content {
            [] => {
                return Err(DerViolation::NonMinimal {
                    offset,
                    what: "INTEGER (empty)",
                });
            }
            [0x00, next, ..] if *next < 0x80 => {
                return Err(DerViolation::NonMinimal {
                    offset,
                    what: "INTEGER",
                });
            }
            [0xff, next, ..] if *next >= 0x80 => {
                return Err(DerViolation::NonMinimal {
                    offset,
                    what: "INTEGER",
                });
            }
            _ => {}
        },
        // BIT STRING: the unused-bits octet is 0..7, and 0 when there are no bits.
        0x03 => match tlv.content {
            [] => {
                return Err(DerViolation::NonMinimal {
                    offset,
                    what: "BIT STRING (empty)",
                });
            }
            [unused, ..] if *unused > 7 => {
                return Err(DerViolation::NonMinimal {
                    offset,
                    what: "BIT STRING unused bits",
                });
            }
            [unused] if *unused != 0 => {
                return Err(DerViolation::NonMinimal {
                    offset,
                    what: "BIT STRING unused bits",
                });
            }
            _ => {}
        },
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_sequence_passes() {
        assert_eq!(check_strict(&[0x30, 0x03, 0x02, 0x01, 0x05], 4), Ok(()));
    }

    #[test]
    fn ber_forms_are_refused() {
        assert!(matches!(
            check_strict(&[0x30, 0x80, 0x02, 0x01, 0x05, 0, 0], 4),
            Err(DerViolation::IndefiniteLength { .. })
        ));
        assert!(matches!(
            check_strict(&[0x30, 0x81, 0x03, 0x02, 0x01, 0x05], 4),
            Err(DerViolation::NonMinimal { what: "length", .. })
        ));
        assert!(matches!(
            check_strict(&[0x30, 0x04, 0x02, 0x02, 0x00, 0x05], 4),
            Err(DerViolation::NonMinimal {
                what: "INTEGER",
                ..
            })
        ));
        assert!(matches!(
            check_strict(&[0x30, 0x03, 0x01, 0x01, 0x01], 4),
            Err(DerViolation::NonMinimal {
                what: "BOOLEAN",
                ..
            })
        ));
        assert!(matches!(
            check_strict(&[0x30, 0x05, 0x02, 0x01], 4),
            Err(DerViolation::Truncated { .. })
        ));
        assert!(matches!(
            check_strict(&[0x30, 0x00, 0x00], 4),
            Err(DerViolation::TrailingBytes { count: 1 })
        ));
        assert!(matches!(
            check_strict(&[0x30, 0x02, 0x30, 0x00], 1),
            Err(DerViolation::TooDeep { max: 1 })
        ));
    }
}

//! Strict PEM for requests: exactly one `CERTIFICATE REQUEST` block, no headers, no text around it;
//! performs no I/O.

use base64::Engine as _;

use super::CsrError;

const LABEL: &str = "CERTIFICATE REQUEST";

/// Decodes the single PEM block of a request into DER.
///
/// # Errors
/// Not PEM, a private key, a wrong label, several blocks, text around the block, headers, bad base64.
pub fn decode_single_block(input: &[u8]) -> Result<Vec<u8>, CsrError> {
    // Checked before anything else so that a pasted private key is refused without being parsed,
    // and never quoted back.
    if contains(input, b"PRIVATE KEY-----") {
        return Err(CsrError::PrivateKey);
    }
    let text = std::str::from_utf8(input).map_err(|_| CsrError::NotPem {
        reason: "the request is not text (not UTF-8)",
    })?;
    let begin_count = text.matches("-----BEGIN ").count();
    if begin_count == 0 {
        return Err(CsrError::NotPem {
            reason: "no \"-----BEGIN CERTIFICATE REQUEST-----\" line",
        });
    }
    if begin_count > 1 {
        return Err(CsrError::MultiplePemBlocks { count: begin_count });
    }
    let begin_at = text.find("-----BEGIN ").unwrap_or(0);
    if !text[..begin_at].trim().is_empty() {
        return Err(CsrError::TextOutsidePem { position: "before" });
    }
    let after_begin = &text[begin_at + "-----BEGIN ".len()..];
    let Some(label_end) = after_begin.find("-----") else {
        return Err(CsrError::NotPem {
            reason: "unterminated BEGIN line",
        });
    };
    let label = &after_begin[..label_end];
    if label != LABEL {
        return Err(CsrError::WrongPemLabel {
            label: label.chars().take(64).collect(),
        });
    }
    let body_and_rest = &after_begin[label_end + "-----".len()..];
    let end_line = format!("-----END {LABEL}-----");
    let Some(end_at) = body_and_rest.find(&end_line) else {
        return Err(CsrError::NotPem {
            reason: "no matching \"-----END CERTIFICATE REQUEST-----\" line",
        });
    };
    if !body_and_rest[end_at + end_line.len()..].trim().is_empty() {
        return Err(CsrError::TextOutsidePem { position: "after" });
    }
    let body = &body_and_rest[..end_at];
    if body.contains(':') {
        return Err(CsrError::NotPem {
            reason: "PEM headers are not allowed in a request",
        });
    }
    let b64: String = body.split_ascii_whitespace().collect();
    if b64.is_empty() {
        return Err(CsrError::NotPem {
            reason: "the PEM block is empty",
        });
    }
    base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| CsrError::Base64 {
            reason: e.to_string(),
        })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

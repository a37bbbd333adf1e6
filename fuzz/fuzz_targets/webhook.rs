//! Fuzzes what `POST /webhooks/stripe` does with untrusted bytes: the Stripe-Signature
//! header, the signature check and the event envelope. Input layout: one byte of secret
//! length, the secret, the header up to the first newline, then the body. Besides "never
//! panics", it checks the scheme's properties on every input: our own signature verifies,
//! another secret, a changed body or a stale timestamp do not.
#![no_main]

#[path = "../../src/api/webhooks.rs"]
#[allow(dead_code)]
mod webhooks;

use libfuzzer_sys::fuzz_target;
use webhooks::{parse_event, sign, verify, SignatureError, TOLERANCE_SECS};

const NOW: i64 = 1_790_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&len, rest)) = data.split_first() else { return };
    let len = (len as usize).min(rest.len());
    let (secret, rest) = rest.split_at(len);
    let secret = String::from_utf8_lossy(secret);
    let (header, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let header = String::from_utf8_lossy(header);

    // Arbitrary header and body: an answer, never a panic.
    let _ = verify(Some(&header), body, &secret, NOW);
    let _ = parse_event(body);

    // The scheme's properties on this body and secret.
    let signed = sign(body, &secret, NOW);
    assert_eq!(verify(Some(&signed), body, &secret, NOW), Ok(()));
    assert_eq!(verify(Some(&signed), body, &format!("{secret}!"), NOW), Err(SignatureError::Mismatch));
    assert_eq!(verify(Some(&signed), body, &secret, NOW + TOLERANCE_SECS + 1), Err(SignatureError::Stale));
    let mut changed = body.to_vec();
    changed.push(b' ');
    assert_eq!(verify(Some(&signed), &changed, &secret, NOW), Err(SignatureError::Mismatch));
    // Several v1 entries: any match accepts.
    let rolled = format!("{signed},v1={}", "0".repeat(64));
    assert_eq!(verify(Some(&rolled), body, &secret, NOW), Ok(()));
});

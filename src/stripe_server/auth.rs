//! Who may read: the secret key (Bearer or Basic auth, compared in constant time, never
//! echoed), a restricted key's missing permissions (`--forbid`: Stripe's 403 naming the
//! permission), and `Stripe-Account` (docs/stripe-behaviour.md, E1, E2 and C1).

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{error, AppState};

/// A list path from a list's short name (`test_clocks` is served under test helpers).
pub(super) fn list_path(name: &str) -> String {
    match name {
        "test_clocks" => "test_helpers/test_clocks".to_string(),
        other => other.to_string(),
    }
}

/// Stripe's 403 for a restricted key without the permission a request needs. The permission
/// is named as Stripe names them (`rak_<object>_read`, `rak_<object>_write`), and the key only
/// by its last 4 characters.
fn forbidden(state: &AppState, kind: &str, access: &str) -> Option<Response> {
    if !state.forbid.iter().any(|f| f == kind) {
        return None;
    }
    let object = kind.rsplit('/').next().unwrap_or(kind).trim_end_matches('s');
    let tail = &state.info.api_key[state.info.api_key.len().saturating_sub(4)..];
    Some(error(
        StatusCode::FORBIDDEN,
        "invalid_request_error",
        format!(
            "The provided key 'rk_test_***{tail}' does not have the required permissions for this endpoint on account \
             '{}'. Having the 'rak_{object}_{access}' permission would allow this request to continue.",
            state.info.account_id
        ),
        None,
        None,
    ))
}

/// Whether a request may read `list`: the key (`authenticate`), then its permissions
/// (`forbidden`); the answer to send otherwise.
pub(super) fn admit(state: &AppState, headers: &HeaderMap, list: &str) -> Result<(), Response> {
    authenticate(state, headers)?;
    forbidden(state, list, "read").map_or(Ok(()), Err)
}

/// Whether a request may write to `path` (under `/v1/`): the key, then its permission to
/// write that kind of object (`--forbid products` takes both away, as a key without either).
pub(super) fn admit_write(state: &AppState, headers: &HeaderMap, path: &str) -> Result<(), Response> {
    authenticate(state, headers)?;
    let kind = if path.starts_with("test_helpers/") {
        "test_helpers/test_clocks"
    } else {
        path.split('/').next().unwrap_or(path)
    };
    forbidden(state, kind, "write").map_or(Ok(()), Err)
}

/// Checks the secret key (Bearer or Basic auth) without ever echoing it.
pub(super) fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').".into(),
            None,
            None,
        ));
    };
    let key = if let Some(k) = value.strip_prefix("Bearer ") {
        k.trim().to_string()
    } else if let Some(b) = value.strip_prefix("Basic ") {
        decode_basic(b.trim()).unwrap_or_default()
    } else {
        String::new()
    };
    if constant_time_eq(key.as_bytes(), state.info.api_key.as_bytes()) {
        connected_account(state, headers)
    } else {
        Err(error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Invalid API Key provided (the key of a simulated account is in its account.json).".into(),
            Some("api_key_invalid"),
            None,
        ))
    }
}

/// `Stripe-Account`: a request on behalf of a connected account. This server holds one
/// account, which is no Connect platform: naming itself is allowed, any other account gets
/// Stripe's answer for a key that is not a platform's.
fn connected_account(state: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    match headers.get("stripe-account").and_then(|v| v.to_str().ok()) {
        None => Ok(()),
        Some(acct) if acct == state.info.account_id => Ok(()),
        Some(_) => Err(error(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            "Only Stripe Connect platforms can work with other accounts. If you specified a client_id parameter, make \
             sure it's correct. If you need to setup a Stripe Connect platform, you can do so at \
             https://dashboard.stripe.com/account/applications/settings."
                .into(),
            None,
            None,
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The user part of `Basic base64(user:)`.
fn decode_basic(b64: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in b64.bytes().filter(|c| *c != b'=') {
        bits = bits << 6 | ALPHABET.iter().position(|a| *a == c)? as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    let text = String::from_utf8(out).ok()?;
    Some(text.split(':').next().unwrap_or_default().to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn basic_auth_user_is_the_key() {
        // base64("sk_test_abc:")
        assert_eq!(super::decode_basic("c2tfdGVzdF9hYmM6").as_deref(), Some("sk_test_abc"));
    }
}

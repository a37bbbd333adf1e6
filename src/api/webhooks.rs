//! Stripe webhooks: `Stripe-Signature` verification and the append-only event archive.
//!
//! Signature (Stripe's scheme): the header holds `t=<unix time>` and one or more
//! `v1=<hex>`; the expected value is HMAC-SHA256 over `"<t>.<raw body>"` keyed with the
//! endpoint secret. Any matching v1 accepts (Stripe sends several while a secret is being
//! rolled); comparison is constant-time; timestamps further than the tolerance from now are
//! refused (replays).
//!
//! Archive: `<data-dir>/events/events.jsonl`, one event per line, each appended and
//! fsynced before the endpoint answers 2xx, and stored once per event id however many
//! times (or how concurrently) Stripe delivers it.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Stripe's default tolerance.
pub const TOLERANCE_SECS: i64 = 300;

/// Why a delivery was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing Stripe-Signature header")]
    Missing,
    #[error("malformed Stripe-Signature header (expected t=...,v1=...)")]
    Malformed,
    #[error("timestamp outside the tolerance of {TOLERANCE_SECS} s")]
    Stale,
    #[error("no v1 signature matches")]
    Mismatch,
}

/// Verifies a delivery's signature header against the secret at `now`.
pub fn verify(header: Option<&str>, payload: &[u8], secret: &str, now: i64) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => timestamp = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            Some(("v1", v)) => signatures.push(decode_hex(v).ok_or(SignatureError::Malformed)?),
            Some(_) => {} // v0 and future schemes are ignored, as Stripe's libraries do
            None => return Err(SignatureError::Malformed),
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - timestamp).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    let mac = signer(secret, timestamp, payload);
    if signatures.iter().any(|s| mac.clone().verify_slice(s).is_ok()) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn signer(secret: &str, timestamp: i64, payload: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

/// The header Stripe would send for this payload (for tests, tools and the load benchmark).
pub fn sign(payload: &[u8], secret: &str, timestamp: i64) -> String {
    let digest = signer(secret, timestamp, payload).finalize().into_bytes();
    format!("t={timestamp},v1={}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// The envelope of a delivered event: what the archive keys on.
#[derive(Debug, PartialEq, Eq)]
pub struct EventEnvelope {
    pub id: String,
    pub kind: String,
}

/// Why a verified body is still not a Stripe event.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("body is not a Stripe event (no id or type)")]
    NoEnvelope,
    #[error("body is not a Stripe event (id {0:?})")]
    NotAnEvent(String),
}

/// Parses a delivery's body: a JSON object with `"object": "event"`, an `evt_` id and a type.
pub fn parse_event(payload: &[u8]) -> Result<EventEnvelope, EventError> {
    let event: serde_json::Value = serde_json::from_slice(payload).map_err(|e| EventError::NotJson(e.to_string()))?;
    let (Some(id), Some(kind)) = (event["id"].as_str(), event["type"].as_str()) else {
        return Err(EventError::NoEnvelope);
    };
    if !id.starts_with("evt_") || event["object"] != "event" {
        return Err(EventError::NotAnEvent(id.to_string()));
    }
    Ok(EventEnvelope { id: id.to_string(), kind: kind.to_string() })
}

/// The append-only, deduplicated event archive.
pub struct EventArchive {
    path: PathBuf,
    file: std::fs::File,
    seen: HashSet<String>,
}

/// Outcome of storing a delivery.
#[derive(Debug, PartialEq, Eq)]
pub enum Stored {
    New,
    Duplicate,
}

impl EventArchive {
    /// Opens (or creates) `<data-dir>/events/events.jsonl` and indexes the ids in it.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let dir = data_dir.join("events");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("events.jsonl");
        let mut seen = HashSet::new();
        if path.exists() {
            let file = std::fs::File::open(&path)?;
            for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
                let line = line?;
                // A torn last line (power cut mid-append) was never acknowledged: skip it.
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if let Some(id) = v["id"].as_str() {
                        seen.insert(id.to_string());
                    }
                } else {
                    tracing::warn!("{}:{}: unreadable line skipped", path.display(), n + 1);
                }
            }
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(EventArchive { path, file, seen })
    }

    /// Stores an event (already parsed and with an id) durably, once.
    pub fn store(&mut self, id: &str, raw: &[u8]) -> anyhow::Result<Stored> {
        if self.seen.contains(id) {
            return Ok(Stored::Duplicate);
        }
        // One line per event: re-serialize compactly so a pretty-printed body stays one line.
        let value: serde_json::Value = serde_json::from_slice(raw)?;
        let mut line = serde_json::to_vec(&value)?;
        line.push(b'\n');
        self.file.write_all(&line).with_context(|| format!("appending to {}", self.path.display()))?;
        self.file.sync_data().with_context(|| format!("syncing {}", self.path.display()))?;
        self.seen.insert(id.to_string());
        Ok(Stored::New)
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event","type":"invoice.paid"}"#;

    #[test]
    fn event_envelopes() {
        assert_eq!(parse_event(BODY), Ok(EventEnvelope { id: "evt_1".into(), kind: "invoice.paid".into() }));
        assert!(matches!(parse_event(b"{not json"), Err(EventError::NotJson(_))));
        assert_eq!(parse_event(br#"[1, 2]"#), Err(EventError::NoEnvelope));
        assert_eq!(parse_event(br#"{"id": 7, "type": "x"}"#), Err(EventError::NoEnvelope));
        assert_eq!(
            parse_event(br#"{"id":"cus_1","object":"customer","type":"x"}"#),
            Err(EventError::NotAnEvent("cus_1".into()))
        );
    }

    #[test]
    fn signature_vectors() {
        let now = 1_700_000_000;
        let good = sign(BODY, SECRET, now);
        assert_eq!(verify(Some(&good), BODY, SECRET, now), Ok(()));
        assert_eq!(verify(Some(&good), BODY, SECRET, now + TOLERANCE_SECS), Ok(()), "at the edge of the tolerance");
        assert_eq!(verify(Some(&good), BODY, "whsec_other", now), Err(SignatureError::Mismatch), "wrong secret");
        assert_eq!(
            verify(Some(&good), br#"{"id":"evt_1","object":"event","type":"invoice.voided"}"#, SECRET, now),
            Err(SignatureError::Mismatch),
            "tampered body"
        );
        assert_eq!(verify(Some(&good), BODY, SECRET, now + TOLERANCE_SECS + 1), Err(SignatureError::Stale));
        assert_eq!(verify(Some(&good), BODY, SECRET, now - TOLERANCE_SECS - 1), Err(SignatureError::Stale));
        // Several v1 entries (a secret being rolled): any match accepts.
        let other = sign(BODY, "whsec_old", now);
        let both = format!("{},v1={},v0=deadbeef", other, good.split("v1=").nth(1).unwrap());
        assert_eq!(verify(Some(&both), BODY, SECRET, now), Ok(()));
        assert_eq!(verify(Some(&other), BODY, SECRET, now), Err(SignatureError::Mismatch));
        assert_eq!(verify(None, BODY, SECRET, now), Err(SignatureError::Missing));
        for bad in ["", "t=abc,v1=00", "v1=00", "t=1700000000", "t=1700000000,v1=zz", "garbage"] {
            assert!(verify(Some(bad), BODY, SECRET, now).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn archive_keeps_each_event_once_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = EventArchive::open(dir.path()).unwrap();
        assert_eq!(a.store("evt_1", BODY).unwrap(), Stored::New);
        assert_eq!(a.store("evt_1", BODY).unwrap(), Stored::Duplicate);
        drop(a);
        let mut a = EventArchive::open(dir.path()).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a.store("evt_1", BODY).unwrap(), Stored::Duplicate);
        let text = std::fs::read_to_string(a.path()).unwrap();
        assert_eq!(text.lines().count(), 1);
    }
}

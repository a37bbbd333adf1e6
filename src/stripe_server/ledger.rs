//! A writable account folder: every accepted write request, in order, in `writes.jsonl`
//! (with its idempotency key and its answer), and the account's object files rendered from
//! them after each write. Restarting the server replays the requests, so the account folder
//! alone is the state; an idempotency key sent again gets the first answer back, as on Stripe
//! (docs/stripe-behaviour.md, W2).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::store::Store;
use super::writes::{Answer, ApiError, WritableAccount, WriteRequest};
use crate::simulate::{Account, AccountInfo, ObjectFiles};

/// The requests a writable account was built from; its presence marks a folder writable.
pub const WRITES_FILE: &str = "writes.jsonl";

/// One accepted request and what it answered.
#[derive(Serialize, Deserialize)]
struct Entry {
    request: WriteRequest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<String>,
    response: Value,
}

/// The writable account and its folder.
pub struct Ledger {
    dir: PathBuf,
    account: WritableAccount,
    /// idempotency key -> (the request it was first used with, its answer)
    answered: HashMap<String, (WriteRequest, Value)>,
    file: std::fs::File,
}

/// Whether `dir` holds a writable account.
pub fn is_writable(dir: &Path) -> bool {
    dir.join(WRITES_FILE).exists()
}

/// Whether `dir` can become a new writable account: missing, or an empty folder.
pub fn is_new(dir: &Path) -> bool {
    !dir.exists() || std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
}

/// Starts an empty writable account in `dir` with a fresh test key (`account.json` and an
/// empty `writes.jsonl`); returns its `account.json`.
pub fn init(dir: &Path) -> anyhow::Result<AccountInfo> {
    // Like `mkdir`, not `mkdir -p`: a mistyped parent is an error, not a new tree.
    if !dir.exists() {
        std::fs::create_dir(dir).map_err(|e| {
            crate::error::bad_input(format!("--account {}: cannot create the new account's folder: {e}", dir.display()))
        })?;
    }
    let now = crate::calendar::now();
    let seed = (now as u64) ^ u64::from(std::process::id()).rotate_left(32);
    let info = AccountInfo {
        account_id: crate::rng::stripe_id("acct", seed, 0, 0),
        api_key: format!("sk_test_{}", crate::rng::token(seed, 24)),
        api_version: crate::simulate::render::API_VERSION.to_string(),
        now,
        now_rfc3339: crate::calendar::format_rfc3339(now),
        seed,
        scenario: "written".to_string(),
        customers: 0,
        months: 0,
        first_month: String::new(),
        event_days: 30,
        horizon: None,
        amount_scale: 1,
        generated_by: format!("mrr {} stripe-server", env!("CARGO_PKG_VERSION")),
    };
    crate::atomic_dir::write_json(&dir.join("account.json"), &info)?;
    std::fs::File::create(dir.join(WRITES_FILE))
        .with_context(|| format!("creating {}", dir.join(WRITES_FILE).display()))?;
    // Its object files come from `Ledger::open`, which renders every writable account it opens.
    Ok(info)
}

impl Ledger {
    /// Replays `dir`'s requests into the account they built.
    pub fn open(dir: &Path, info: &AccountInfo) -> anyhow::Result<Self> {
        let path = dir.join(WRITES_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut account = WritableAccount::empty(info.seed);
        let mut answered = HashMap::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let entry: Entry = serde_json::from_str(line)
                .map_err(|e| crate::error::bad_input(format!("{} line {}: {e}", path.display(), n + 1)))?;
            account.apply(&entry.request).map_err(|e| {
                crate::error::bad_input(format!(
                    "{} line {}: the request no longer applies ({}): was the file edited?",
                    path.display(),
                    n + 1,
                    e.message
                ))
            })?;
            if let Some(key) = entry.idempotency_key {
                answered.insert(key, (entry.request, entry.response));
            }
        }
        render(dir, &account, info)?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Ledger { dir: dir.to_path_buf(), account, answered, file })
    }

    /// Applies a request, records it, renders the account again and loads the new objects;
    /// answers the body to send and the store to serve from now on. A key already used
    /// answers its first response (the same parameters) or Stripe's 400 (others).
    pub fn write(
        &mut self,
        request: WriteRequest,
        idempotency_key: Option<String>,
        info: &AccountInfo,
    ) -> Result<(Value, Option<Store>), ApiError> {
        if let Some((first, response)) = idempotency_key.as_ref().and_then(|k| self.answered.get(k)) {
            if (&first.method, &first.path, &first.form) == (&request.method, &request.path, &request.form) {
                return Ok((response.clone(), None));
            }
            return Err(ApiError {
                status: 400,
                code: Some("idempotency_key_in_use"),
                message: "Keys for idempotent requests can only be used with the same parameters they were first \
                          used with. Try using a key other than the one used in the original request."
                    .into(),
                param: None,
            });
        }
        let before = self.account.clone();
        let answer = self.account.apply(&request)?;
        let rendered = render(&self.dir, &self.account, info).and_then(|()| Store::load(&self.dir));
        let store = match rendered {
            Ok(store) => store,
            Err(e) => {
                self.account = before;
                return Err(internal(e));
            }
        };
        let response = match answer {
            Answer::Body(body) => body,
            Answer::Object { kind, id } => object(&store, kind, &id)?,
            Answer::Advancing { id } => {
                let mut clock = object(&store, "test_helpers/test_clocks", &id)?;
                clock["status"] = Value::from("advancing");
                clock
            }
        };
        let entry = Entry { request, idempotency_key, response };
        let line = serde_json::to_string(&entry).map_err(|e| internal(e.into()))?;
        if let Err(e) = writeln!(self.file, "{line}").and_then(|()| self.file.sync_data()) {
            self.account = before;
            return Err(internal(
                anyhow::Error::from(e).context(format!("appending to {}", self.dir.join(WRITES_FILE).display())),
            ));
        }
        if let Some(key) = entry.idempotency_key {
            self.answered.insert(key, (entry.request, entry.response.clone()));
        }
        Ok((entry.response, Some(store)))
    }
}

fn object(store: &Store, kind: &str, id: &str) -> Result<Value, ApiError> {
    store.tables[kind].get(id).map_err(internal)?.ok_or_else(|| internal(anyhow::anyhow!("{id} was not rendered")))
}

fn internal(e: anyhow::Error) -> ApiError {
    tracing::error!("writing the account failed: {e:#}");
    ApiError { status: 500, code: None, message: format!("Local server error: {e}"), param: None }
}

/// Renders the account into `dir`'s object files: each clock's customers as they look at its
/// frozen time, the others at this instant. Files are written aside and renamed into place, so
/// a reader of the previous files keeps reading them whole.
fn render(dir: &Path, account: &WritableAccount, info: &AccountInfo) -> anyhow::Result<()> {
    let aside = dir.join(".rendering");
    if aside.exists() {
        std::fs::remove_dir_all(&aside).with_context(|| format!("removing {}", aside.display()))?;
    }
    std::fs::create_dir_all(&aside).with_context(|| format!("creating {}", aside.display()))?;
    let now = crate::calendar::now();
    let at = |t: i64| Account {
        seed: account.seed,
        now: t,
        catalog: account.catalog.clone(),
        clocks: account.clocks.clone(),
    };
    let unclocked = at(now);
    let by_clock: Vec<Account> = account.clocks.iter().map(|c| at(c.frozen_time)).collect();
    let mut files = ObjectFiles::with_metadata(&aside, false, &unclocked, account.metadata())?;
    let kept = i64::from(info.event_days) * crate::calendar::DAY;
    for c in account.customers() {
        let acct = c.test_clock.map_or(&unclocked, |k| &by_clock[k]);
        files.customer(acct, c, acct.now - kept, &info.api_version)?;
    }
    // The clocks' own events, at the instants the requests made them (R3).
    files.clock_events(&unclocked, &account.clock_advances, now - kept, &info.api_version)?;
    files.finish(&unclocked, info, 0, aside.clone())?;
    for entry in std::fs::read_dir(&aside)? {
        let entry = entry?;
        let target = dir.join(entry.file_name());
        std::fs::rename(entry.path(), &target).with_context(|| format!("moving into {}", target.display()))?;
    }
    std::fs::remove_dir(&aside).ok();
    Ok(())
}

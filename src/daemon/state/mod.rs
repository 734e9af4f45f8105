//! The driver's durable state, in a [`StateStore`] that every replica shares:
//!
//! ```text
//! ledger/{object}                    an object counted, and the windows it fed
//! parts/{series}/{start}/{object}    one object's partial state of one window
//! open/{series}/{start}              a window with parts: the finaliser lists these, not parts/
//! watermark/{replica}                the newest event time a replica has seen (and when)
//! watermark/-retired                 the newest of those of replicas gone quiet
//! lease/{series}                     which replica finalises and delivers a series now
//! fence/{series}/{start}             a window being finalised: parts stored after it are late
//! late/{series}/{object}             rows of an object counted late, until a window's rules see them
//! outbox/{series}/{start}            a finalised window's deliveries, until all are sent
//! done/{series}/{start}              a finalised and delivered window: the parts it merged
//! rules/{series}                     the rules' state for a series
//! reports/{series}                   where the series' periodic compliance reports stand
//! labels/{series}/{arrived}-{object}  one label file's labels, until the join folds them in
//! join/{series}                      a label-joined series' join: waiting labels, pending
//!                                    predictions of finalised windows, counts
//! ```
//!
//! A series is `{monitor}/{endpoint}` (`-` for batch monitors); `{start}` is the window's start
//! in seconds, zero-padded so keys list in time order; `{object}` a hash of the object's source
//! and version ([`object_hash`]). A source lets go of an object (deletes its message, marks a
//! file read) only once its parts and its ledger entry are stored, so
//! a crash at any point either repeats the object (its parts are overwritten with the same
//! bytes, its ledger entry makes the repeat a no-op) or has already recorded it. A window is
//! finalised by the holder of its series' lease, which merges the parts in object order — the
//! same result whichever replica does it — and commits the window by creating its outbox entry
//! (create-once): a second finaliser finds it and stops.
//!
//! A finaliser fences a window before it lists the window's parts; a reader checks the fence
//! after storing its part. A reader that finds no fence knows its part will be listed; one
//! that finds the fence waits for the commit and counts its rows late unless they were merged.
//! So every row ends in its window or is counted late, never neither.
//!
//! A reader marks a window open before it stores the window's first part, and the finaliser
//! removes the mark after it has committed the window and removed its parts. So the
//! finaliser's listing each tick grows with the windows open, not with the objects in them.
//! A reader whose part came too late (or again, after its window was committed) removes the
//! part itself: the finaliser may have removed the mark already and would not list it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::{StateStore, StoreError, Version};

mod series;

use series::DoneRecord;
pub(in crate::daemon) use series::{ReportProgress, SeriesRules, WindowOutbox};

/// A series: one monitor's windows for one endpoint (none for batch monitors). In store keys
/// it is `{monitor}/{endpoint or -}`: monitor names hold no `/`, and SageMaker endpoint names
/// are never `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct SeriesKey {
    pub monitor: String,
    pub endpoint: Option<String>,
}

impl SeriesKey {
    pub fn new(monitor: &str, endpoint: Option<&str>) -> Self {
        Self {
            monitor: monitor.to_string(),
            endpoint: endpoint.map(str::to_string),
        }
    }

    /// The series of a store key's `{monitor}/{endpoint}` part.
    fn parse(text: &str) -> Option<Self> {
        let (monitor, endpoint) = text.split_once('/')?;
        (!endpoint.contains('/')).then(|| Self::new(monitor, (endpoint != "-").then_some(endpoint)))
    }
}

impl std::fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}",
            self.monitor,
            self.endpoint.as_deref().unwrap_or("-")
        )
    }
}

/// 128 bits of hash of the object's identity: collisions are out of reach.
pub(super) fn object_hash(bucket: &str, key: &str, etag: &str) -> String {
    let identity = format!("{bucket}\0{key}\0{etag}");
    let a = twox_hash::XxHash64::oneshot(1, identity.as_bytes());
    let b = twox_hash::XxHash64::oneshot(2, identity.as_bytes());
    format!("{a:016x}{b:016x}")
}

fn window_id(series: &SeriesKey, start: i64) -> String {
    // Event times before 1970 do not occur in capture data; clamp rather than break the order.
    format!("{series}/{:012}", start.max(0))
}

/// Where an object's part of a window stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    /// Not fenced: the finaliser will list the part.
    Open,
    /// Committed with the part merged.
    Merged,
    /// Committed without it: its rows are late.
    Late,
    /// Fenced, not yet committed: ask again.
    Undecided,
}

/// An object counted: what it was and where its rows went.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct LedgerEntry {
    /// `s3://bucket/key`, or a file's path below the input directory.
    #[serde(default)]
    pub source: String,
    /// The S3 ETag, or a file's length and modification time.
    #[serde(default)]
    pub version: String,
    pub rows: u64,
    /// `{series}/{start}` of each window it fed.
    pub windows: Vec<String>,
    /// Rows for windows already finalised when the object arrived.
    pub late_rows: u64,
    /// A file that could not be read: why (it is in the dead-letter file too). Counted once,
    /// not read again until it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    pub replica: String,
    pub recorded_at: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Lease {
    owner: String,
    expires_ms: i64,
}

/// A held series lease.
pub(super) struct Held {
    key: String,
    version: Version,
    /// When the expiry it holds was computed (just before it was written).
    written: std::time::Instant,
}

/// Open work found in the store, per series: finalised windows still to deliver, and windows
/// with parts (marked open).
#[derive(Debug, Default)]
pub(super) struct SeriesWork {
    pub outboxes: Vec<i64>,
    pub windows: std::collections::BTreeSet<i64>,
    /// Label files waiting to be folded into the series' join, in arrival order.
    pub labels: Vec<String>,
}

pub(super) struct Durable {
    pub store: StateStore,
    pub replica: String,
    lease_timeout: Duration,
    /// The newest event time this replica has written to its watermark key.
    written_watermark: AtomicI64,
    /// Windows this process has marked open, so that it marks each once, not per object; at
    /// most [`MARKED_REMEMBERED`] (then forgotten: a window marked again costs a request).
    marked: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Leases kept between passes (by key), taken again without a request while less than
    /// half spent; released at shutdown.
    kept: std::sync::Mutex<std::collections::HashMap<String, Held>>,
}

/// How many marked windows a process remembers.
const MARKED_REMEMBERED: usize = 10_000;

/// How many reads of a batch (a window's parts, the watermarks, late notes) are in flight at
/// once: on S3 each is a round trip, and one after another they were most of a window's
/// close → delivery time.
const READS_AT_ONCE: usize = 16;

/// Where the watermarks of replicas gone quiet are kept (the largest of them): no replica's
/// name starts with `-`.
const RETIRED_WATERMARK: &str = "watermark/-retired";

/// A replica whose watermark has not moved for this many lease timeouts (10 minutes by
/// default) is taken as gone: its watermark is retired.
const WATERMARK_RETIRED_AFTER_LEASES: u32 = 10;

/// A watermark key's content: the event time and, since keys record it, when it was written
/// (Unix ms).
fn parse_watermark(bytes: &[u8]) -> Option<(i64, Option<i64>)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut fields = text.split_whitespace();
    let time = fields.next()?.parse().ok()?;
    Some((time, fields.next().and_then(|w| w.parse().ok())))
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("state records serialize")
}

fn parse<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Failed {
        store: "state".into(),
        op: "parse",
        key: key.to_string(),
        message: e.to_string(),
        retryable: false,
    })
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Durable {
    pub fn new(store: StateStore, lease_timeout: Duration) -> Self {
        let replica = format!(
            "{}-{}-{:08x}",
            hostname(),
            std::process::id(),
            fastrand::u32(..)
        );
        Self {
            store,
            replica,
            lease_timeout,
            written_watermark: AtomicI64::new(i64::MIN),
            marked: Default::default(),
            kept: Default::default(),
        }
    }

    pub async fn ledger_entry(&self, object: &str) -> Result<Option<LedgerEntry>, StoreError> {
        let key = format!("ledger/{object}");
        match self.store.get(&key).await? {
            Some(bytes) => parse(&key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    pub async fn put_ledger_entry(
        &self,
        object: &str,
        entry: &LedgerEntry,
    ) -> Result<(), StoreError> {
        self.store
            .put(&format!("ledger/{object}"), json(entry))
            .await
    }

    /// Marks a window open (it has, or is about to have, a part), once per process and window.
    pub async fn mark_open(&self, series: &SeriesKey, start: i64) -> Result<(), StoreError> {
        let id = window_id(series, start);
        if self.marked.lock().expect("not poisoned").contains(&id) {
            return Ok(());
        }
        self.store
            .put_new(&format!("open/{id}"), Vec::new())
            .await?;
        let mut marked = self.marked.lock().expect("not poisoned");
        if marked.len() >= MARKED_REMEMBERED {
            marked.clear();
        }
        marked.insert(id);
        Ok(())
    }

    /// Removes a window's open mark: once it is committed and its parts are removed.
    pub async fn unmark_open(&self, series: &SeriesKey, start: i64) -> Result<(), StoreError> {
        self.store
            .delete(&format!("open/{}", window_id(series, start)))
            .await
    }

    /// Marks open every window with a stored part: parts stored by a driftd from before the
    /// marks, which would otherwise never be finalised. Lists every part once; run at start.
    pub async fn mark_stored_windows(&self) -> Result<(), StoreError> {
        let mut windows = std::collections::BTreeSet::new();
        for key in self.store.list("parts/").await? {
            let window = (key.strip_prefix("parts/"))
                .and_then(|rest| rest.rsplit_once('/'))
                .and_then(|(window, _)| parse_window(Some(window)));
            if let Some(window) = window {
                windows.insert(window);
            }
        }
        for (series, start) in windows {
            self.mark_open(&series, start).await?;
        }
        Ok(())
    }

    /// Writes an object's ledger entry unless it has one: `false` when another replica (or
    /// an earlier run) recorded the object first. An answer lost on the way and retried is
    /// recognised as this replica's own write by the entry it finds.
    pub async fn create_ledger_entry(
        &self,
        object: &str,
        entry: &LedgerEntry,
    ) -> Result<bool, StoreError> {
        let key = format!("ledger/{object}");
        if self.store.put_new(&key, json(entry)).await? {
            return Ok(true);
        }
        let found = self.ledger_entry(object).await?;
        Ok(found.is_some_and(|found| {
            found.replica == entry.replica && found.recorded_at == entry.recorded_at
        }))
    }

    pub async fn put_part(
        &self,
        series: &SeriesKey,
        start: i64,
        object: &str,
        bytes: Vec<u8>,
    ) -> Result<String, StoreError> {
        let id = window_id(series, start);
        self.store
            .put(&format!("parts/{id}/{object}"), bytes)
            .await?;
        Ok(id)
    }

    /// The stored parts of a window by object, in the order given; `None` for one removed since
    /// it was listed.
    pub async fn get_parts(
        &self,
        series: &SeriesKey,
        start: i64,
        objects: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let id = window_id(series, start);
        let keys: Vec<String> = (objects.iter())
            .map(|object| format!("parts/{id}/{object}"))
            .collect();
        self.get_many(&keys).await
    }

    /// Reads `keys`, [`READS_AT_ONCE`] at a time; the values in the order of the keys.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        use futures_util::{StreamExt, TryStreamExt};
        futures_util::stream::iter(keys)
            .map(|key| self.store.get(key))
            .buffered(READS_AT_ONCE)
            .try_collect()
            .await
    }

    pub async fn delete_parts(
        &self,
        series: &SeriesKey,
        start: i64,
        objects: &[String],
    ) -> Result<(), StoreError> {
        let id = window_id(series, start);
        let keys: Vec<String> = (objects.iter())
            .map(|object| format!("parts/{id}/{object}"))
            .collect();
        self.store.delete_many(&keys).await
    }

    /// Whether a series' keys fit the store (a key's endpoint segment comes from outside).
    pub fn check_series(&self, series: &SeriesKey) -> Result<(), String> {
        // The longest key a series gets: a part's.
        let longest = format!("parts/{}/{}", window_id(series, 0), object_hash("", "", ""));
        crate::store::check_key(&longest)
            .map_err(|rule| format!("its series {series:?} cannot be a state-store key: {rule}"))
    }

    /// Marks a window as being finalised; parts stored from now on are late.
    pub async fn fence(&self, series: &SeriesKey, start: i64) -> Result<(), StoreError> {
        let key = format!("fence/{}", window_id(series, start));
        self.store.put_new(&key, Vec::new()).await.map(|_| ())
    }

    /// The objects with a part of a window, in object order.
    pub async fn list_parts(
        &self,
        series: &SeriesKey,
        start: i64,
    ) -> Result<Vec<String>, StoreError> {
        let prefix = format!("parts/{}/", window_id(series, start));
        let mut objects: Vec<String> = self
            .store
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|key| key.strip_prefix(&prefix).map(str::to_string))
            .collect();
        objects.sort();
        Ok(objects)
    }

    /// Where `object`'s stored part of a window stands. One request while the window is open
    /// (the common case): fences are never removed and a window is fenced before it commits,
    /// so a window without a fence is neither being finalised nor finalised.
    pub async fn fate(
        &self,
        series: &SeriesKey,
        start: i64,
        object: &str,
    ) -> Result<Fate, StoreError> {
        let fence = format!("fence/{}", window_id(series, start));
        if self.store.get(&fence).await?.is_none() {
            return Ok(Fate::Open);
        }
        Ok(match self.finalised_parts(series, start).await? {
            Some(parts) if parts.iter().any(|p| p == object) => Fate::Merged,
            Some(_) => Fate::Late,
            None => Fate::Undecided,
        })
    }

    /// Notes that `rows` of `object` were counted late in a series, for the rules' next window
    /// of it (the `late_rows` condition).
    pub async fn note_late(
        &self,
        series: &SeriesKey,
        object: &str,
        rows: u64,
    ) -> Result<(), StoreError> {
        self.store
            .put(
                &format!("late/{series}/{object}"),
                rows.to_string().into_bytes(),
            )
            .await
    }

    /// The late rows noted for a series, and the notes' keys: remove them with
    /// [`Durable::forget_late`] once a window's rules have seen them.
    pub async fn late_notes(&self, series: &SeriesKey) -> Result<(u64, Vec<String>), StoreError> {
        let keys = self.store.list(&format!("late/{series}/")).await?;
        let mut rows = 0;
        for bytes in self.get_many(&keys).await?.into_iter().flatten() {
            rows += String::from_utf8_lossy(&bytes)
                .trim()
                .parse::<u64>()
                .unwrap_or(0);
        }
        Ok((rows, keys))
    }

    pub async fn forget_late(&self, keys: &[String]) -> Result<(), StoreError> {
        self.store.delete_many(keys).await
    }

    /// The objects a finalised window merged, or `None` while it is not finalised.
    pub async fn finalised_parts(
        &self,
        series: &SeriesKey,
        start: i64,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let key = format!("done/{}", window_id(series, start));
        // Side by side: neither is there in the usual case, an open window's.
        let (outbox, done) =
            futures_util::try_join!(self.outbox(series, start), self.store.get(&key))?;
        if let Some(outbox) = outbox {
            return Ok(Some(outbox.parts));
        }
        match done {
            Some(bytes) => parse::<DoneRecord>(&key, &bytes).map(|d| Some(d.parts)),
            None => Ok(None),
        }
    }

    /// Records that this replica has seen events up to `time` (with when it wrote it, so that
    /// others can tell a replica gone quiet).
    pub async fn note_event_time(&self, time: i64) -> Result<(), StoreError> {
        if time <= self.written_watermark.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.store
            .put(
                &format!("watermark/{}", self.replica),
                format!("{time} {}", now_ms()).into_bytes(),
            )
            .await?;
        self.written_watermark.fetch_max(time, Ordering::Relaxed);
        Ok(())
    }

    /// The newest event time this replica has written to its watermark key, if any: no newer
    /// than [`Durable::newest_event_time`], read without a request.
    pub fn own_newest_event_time(&self) -> Option<i64> {
        Some(self.written_watermark.load(Ordering::Relaxed)).filter(|&time| time != i64::MIN)
    }

    /// The newest event time any replica has seen. Keys of replicas quiet for
    /// [`WATERMARK_RETIRED_AFTER_LEASES`] leases (most often stopped ones: each start is a new
    /// replica) are folded into [`RETIRED_WATERMARK`] and removed, so that this read, made every
    /// tick, costs a request per live replica, not per replica ever started.
    pub async fn newest_event_time(&self) -> Result<Option<i64>, StoreError> {
        let own = format!("watermark/{}", self.replica);
        let quiet_ms = (self.lease_timeout * WATERMARK_RETIRED_AFTER_LEASES).as_millis() as i64;
        let now = now_ms();
        let mut newest = None;
        let mut quiet = Vec::new();
        let keys = self.store.list("watermark/").await?;
        let values = self.get_many(&keys).await?;
        for (key, bytes) in keys.into_iter().zip(values) {
            let Some(bytes) = bytes else {
                continue;
            };
            let Some((time, written_ms)) = parse_watermark(&bytes) else {
                continue;
            };
            newest = newest.max(Some(time));
            if key != own
                && key != RETIRED_WATERMARK
                && written_ms.is_none_or(|w| now - w > quiet_ms)
            {
                quiet.push((key, bytes, time));
            }
        }
        if !quiet.is_empty() {
            self.retire_watermarks(quiet).await?;
        }
        Ok(newest)
    }

    /// Folds quiet replicas' watermarks into the retired one (which only grows), then removes
    /// each key still holding what was read. A replica that wakes up between that read and
    /// the removal loses its newer time from the store until it sees a newer event; windows
    /// then close on the clock or on the next event, later than they would have.
    async fn retire_watermarks(
        &self,
        quiet: Vec<(String, Vec<u8>, i64)>,
    ) -> Result<(), StoreError> {
        let newest = quiet
            .iter()
            .map(|(_, _, time)| *time)
            .max()
            .expect("not empty");
        loop {
            let current = self.store.get_versioned(RETIRED_WATERMARK).await?;
            let retired = current
                .as_ref()
                .and_then(|(bytes, _)| parse_watermark(bytes));
            if retired.is_some_and(|(time, _)| time >= newest) {
                break;
            }
            let bytes = newest.to_string().into_bytes();
            let written = match &current {
                Some((_, version)) => {
                    self.store
                        .replace(RETIRED_WATERMARK, bytes, version)
                        .await?
                }
                None => self.store.put_new(RETIRED_WATERMARK, bytes).await?,
            };
            if written {
                break;
            }
        }
        for (key, read, _) in quiet {
            if self.store.get(&key).await?.as_deref() == Some(&read[..]) {
                self.store.delete(&key).await?;
            }
        }
        Ok(())
    }

    /// Every series with windows to finalise or deliver.
    pub async fn pending_work(
        &self,
    ) -> Result<std::collections::BTreeMap<SeriesKey, SeriesWork>, StoreError> {
        let mut work: std::collections::BTreeMap<SeriesKey, SeriesWork> = Default::default();
        let (outboxes, labels, open) = futures_util::try_join!(
            self.store.list("outbox/"),
            self.store.list("labels/"),
            self.store.list("open/"),
        )?;
        for key in outboxes {
            if let Some((series, start)) = parse_window(key.strip_prefix("outbox/")) {
                work.entry(series).or_default().outboxes.push(start);
            }
        }
        for key in labels {
            let Some((series, name)) = key
                .strip_prefix("labels/")
                .and_then(|rest| rest.rsplit_once('/'))
            else {
                continue;
            };
            if let Some(series) = SeriesKey::parse(series) {
                work.entry(series)
                    .or_default()
                    .labels
                    .push(name.to_string());
            }
        }
        for key in open {
            if let Some((series, start)) = parse_window(key.strip_prefix("open/")) {
                work.entry(series).or_default().windows.insert(start);
            }
        }
        Ok(work)
    }

    /// Stores one label file's labels for `series`; `name` orders label files by arrival.
    pub async fn put_labels(
        &self,
        series: &SeriesKey,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<String, StoreError> {
        let key = format!("labels/{series}/{name}");
        self.store.put(&key, bytes).await?;
        Ok(key)
    }

    pub async fn get_labels(
        &self,
        series: &SeriesKey,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get(&format!("labels/{series}/{name}")).await
    }

    pub async fn delete_labels(
        &self,
        series: &SeriesKey,
        names: &[String],
    ) -> Result<(), StoreError> {
        let keys: Vec<String> = (names.iter())
            .map(|name| format!("labels/{series}/{name}"))
            .collect();
        self.store.delete_many(&keys).await
    }

    pub async fn join_state(&self, series: &SeriesKey) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get(&format!("join/{series}")).await
    }

    pub async fn put_join_state(
        &self,
        series: &SeriesKey,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.store.put(&format!("join/{series}"), bytes).await
    }

    /// Takes the series' lease if it is free, expired or already ours.
    pub async fn acquire(&self, series: &SeriesKey) -> Result<Option<Held>, StoreError> {
        let key = format!("lease/{series}");
        let kept = self.kept.lock().expect("not poisoned").remove(&key);
        if let Some(held) = kept.filter(|held| self.fresh(held)) {
            return Ok(Some(held));
        }
        let written = std::time::Instant::now();
        let mine = || {
            json(&Lease {
                owner: self.replica.clone(),
                expires_ms: now_ms() + self.lease_timeout.as_millis() as i64,
            })
        };
        if self.store.put_new(&key, mine()).await? {
            return self.confirm(&key, written).await;
        }
        let Some((bytes, version)) = self.store.get_versioned(&key).await? else {
            // Released between the two calls: try again next tick.
            return Ok(None);
        };
        let lease: Lease = parse(&key, &bytes)?;
        if lease.owner != self.replica && lease.expires_ms > now_ms() {
            return Ok(None);
        }
        if self.store.replace(&key, mine(), &version).await? {
            return self.confirm(&key, written).await;
        }
        Ok(None)
    }

    /// Reads back the lease just written: its version for renewals, and proof that it is ours
    /// (a retried write that had already succeeded reports a lost race).
    async fn confirm(
        &self,
        key: &str,
        written: std::time::Instant,
    ) -> Result<Option<Held>, StoreError> {
        let Some((bytes, version)) = self.store.get_versioned(key).await? else {
            return Ok(None);
        };
        let lease: Lease = parse(key, &bytes)?;
        Ok((lease.owner == self.replica).then(|| Held {
            key: key.to_string(),
            version,
            written,
        }))
    }

    /// Extends a held lease; `false` if it was lost (expired and taken). A lease less than half
    /// spent is kept as it is: no other replica may take it before it expires, and a window
    /// takes far less than half a lease to finalise. That spares the two requests of a renewal
    /// on the way from a window's close to its delivery.
    pub async fn renew(&self, held: &mut Held) -> Result<bool, StoreError> {
        if self.fresh(held) {
            return Ok(true);
        }
        let written = std::time::Instant::now();
        let lease = json(&Lease {
            owner: self.replica.clone(),
            expires_ms: now_ms() + self.lease_timeout.as_millis() as i64,
        });
        if !self.store.replace(&held.key, lease, &held.version).await? {
            return Ok(false);
        }
        Ok(match self.confirm(&held.key, written).await? {
            Some(renewed) => {
                *held = renewed;
                true
            }
            None => false,
        })
    }

    /// Less than half spent: no other replica may take it before it expires.
    fn fresh(&self, held: &Held) -> bool {
        held.written.elapsed() < self.lease_timeout / 2
    }

    /// Keeps a lease for the series' next pass (a window closes about once a window size): on
    /// the way from a window's close to its delivery, taking the lease again costs nothing
    /// while it is fresh. A lease no longer fresh is left to expire (or taken again).
    pub fn keep(&self, held: Held) {
        if self.fresh(&held) {
            let mut kept = self.kept.lock().expect("not poisoned");
            kept.retain(|_, held| held.written.elapsed() < self.lease_timeout);
            kept.insert(held.key.clone(), held);
        }
    }

    /// Releases the kept leases (at shutdown), so that other replicas carry on at once.
    pub async fn release_kept(&self) {
        let kept: Vec<Held> = (self.kept.lock().expect("not poisoned").drain())
            .map(|(_, held)| held)
            .collect();
        for held in kept {
            self.release(held).await;
        }
    }

    pub async fn release(&self, held: Held) {
        // Only if still ours: a lease taken over after expiry belongs to the other replica.
        if let Ok(Some((bytes, version))) = self.store.get_versioned(&held.key).await
            && version == held.version
            && parse::<Lease>(&held.key, &bytes).is_ok_and(|l| l.owner == self.replica)
            && let Err(error) = self.store.delete(&held.key).await
        {
            tracing::warn!(%error, "cannot release a lease; it expires on its own");
        }
    }
}

/// `{monitor}/{endpoint}/{start}` → (series, start).
fn parse_window(id: Option<&str>) -> Option<(SeriesKey, i64)> {
    let (series, start) = id?.rsplit_once('/')?;
    Some((SeriesKey::parse(series)?, start.parse().ok()?))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .unwrap_or_else(|| "driftd".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::cloudwatch::Family;
    use crate::store::LocalStore;

    fn durable(dir: &std::path::Path) -> Durable {
        Durable::new(
            StateStore::from(LocalStore::open(dir.to_path_buf()).unwrap()),
            Duration::from_millis(300),
        )
    }

    #[test]
    fn series_and_windows_round_trip_through_keys() {
        let (batch, live) = (SeriesKey::new("m", None), SeriesKey::new("m", Some("ep")));
        assert_eq!(live.to_string(), "m/ep");
        assert_eq!(SeriesKey::parse("m/ep"), Some(live.clone()));
        assert_eq!(SeriesKey::parse("m/-"), Some(batch.clone()));
        assert_eq!(SeriesKey::parse("m/ep/x"), None);
        assert_eq!(window_id(&batch, 3600), "m/-/000000003600");
        assert_eq!(parse_window(Some("m/ep/000000003600")), Some((live, 3600)));
        assert_ne!(object_hash("b", "k", "e1"), object_hash("b", "k", "e2"));
        assert_eq!(object_hash("b", "k", "e").len(), 32);
    }

    #[tokio::test]
    async fn one_replica_holds_a_series_until_it_releases_or_the_lease_expires() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (durable(dir.path()), durable(dir.path()));
        let held = a
            .acquire(&SeriesKey::new("m", Some("ep")))
            .await
            .unwrap()
            .expect("free");
        assert!(
            b.acquire(&SeriesKey::new("m", Some("ep")))
                .await
                .unwrap()
                .is_none(),
            "taken"
        );
        // Another series is independent.
        assert!(
            b.acquire(&SeriesKey::new("m", Some("other")))
                .await
                .unwrap()
                .is_some()
        );
        a.release(held).await;
        let mut held = b
            .acquire(&SeriesKey::new("m", Some("ep")))
            .await
            .unwrap()
            .expect("released");
        assert!(b.renew(&mut held).await.unwrap());
        // B stops renewing: once the lease expires A takes it, and B's renewal fails.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            a.acquire(&SeriesKey::new("m", Some("ep")))
                .await
                .unwrap()
                .is_some()
        );
        assert!(!b.renew(&mut held).await.unwrap());
    }

    #[tokio::test]
    async fn work_lists_open_windows_in_order_and_commits_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = durable(dir.path());
        let series = SeriesKey::new("m", Some("ep"));
        for (start, object) in [(7200, "b"), (3600, "a"), (7200, "a")] {
            d.mark_open(&series, start).await.unwrap();
            d.put_part(&series, start, object, vec![1]).await.unwrap();
        }
        // A part stored before the marks existed is found at start.
        d.put_part(&series, 10800, "c", vec![1]).await.unwrap();
        d.mark_stored_windows().await.unwrap();
        let work = d.pending_work().await.unwrap();
        assert_eq!(
            work[&series].windows.iter().copied().collect::<Vec<_>>(),
            [3600, 7200, 10800]
        );
        assert_eq!(d.list_parts(&series, 7200).await.unwrap(), ["a", "b"]);
        d.unmark_open(&series, 10800).await.unwrap();
        let work = d.pending_work().await.unwrap();
        assert!(!work[&series].windows.contains(&10800));
        let outbox = WindowOutbox {
            end: 7200,
            parts: vec!["a".into()],
            rows: 1,
            relative_dir: String::new(),
            report_files: Vec::new(),
            files_done: true,
            actions: Vec::new(),
            report_done: true,
            report_failed: false,
            committed_at: 0,
            family: Family::DataQuality,
            endpoint: Some("ep".into()),
            metrics: Vec::new(),
            metrics_done: true,
            messages: Vec::new(),
            messages_sent: 0,
            rules_after: SeriesRules::default(),
        };
        // Before the fence a part will be listed; after it, its fate waits for the commit.
        assert_eq!(
            d.fate(&SeriesKey::new("m", Some("ep")), 3600, "a")
                .await
                .unwrap(),
            Fate::Open
        );
        d.fence(&SeriesKey::new("m", Some("ep")), 3600)
            .await
            .unwrap();
        d.fence(&SeriesKey::new("m", Some("ep")), 3600)
            .await
            .unwrap();
        assert_eq!(
            d.fate(&SeriesKey::new("m", Some("ep")), 3600, "a")
                .await
                .unwrap(),
            Fate::Undecided
        );
        assert_eq!(
            d.list_parts(&SeriesKey::new("m", Some("ep")), 3600)
                .await
                .unwrap(),
            ["a"]
        );
        assert!(
            d.commit(&SeriesKey::new("m", Some("ep")), 3600, &outbox)
                .await
                .unwrap()
        );
        assert!(
            !d.commit(&SeriesKey::new("m", Some("ep")), 3600, &outbox)
                .await
                .unwrap()
        );
        assert_eq!(
            d.fate(&SeriesKey::new("m", Some("ep")), 3600, "a")
                .await
                .unwrap(),
            Fate::Merged
        );
        assert_eq!(
            d.fate(&SeriesKey::new("m", Some("ep")), 3600, "b")
                .await
                .unwrap(),
            Fate::Late
        );
        d.note_late(&SeriesKey::new("m", Some("ep")), "b", 7)
            .await
            .unwrap();
        d.note_late(&SeriesKey::new("m", Some("ep")), "c", 5)
            .await
            .unwrap();
        d.note_late(&SeriesKey::new("m", Some("other")), "c", 1)
            .await
            .unwrap();
        let (late, notes) = d
            .late_notes(&SeriesKey::new("m", Some("ep")))
            .await
            .unwrap();
        assert_eq!((late, notes.len()), (12, 2));
        d.forget_late(&notes).await.unwrap();
        assert_eq!(
            d.late_notes(&SeriesKey::new("m", Some("ep")))
                .await
                .unwrap(),
            (0, Vec::new())
        );
        assert_eq!(
            d.late_notes(&SeriesKey::new("m", Some("other")))
                .await
                .unwrap()
                .0,
            1
        );
        assert_eq!(
            d.finalised_parts(&SeriesKey::new("m", Some("ep")), 3600)
                .await
                .unwrap(),
            Some(vec!["a".to_string()])
        );
        d.retire(&SeriesKey::new("m", Some("ep")), 3600, &outbox)
            .await
            .unwrap();
        assert!(
            d.outbox(&SeriesKey::new("m", Some("ep")), 3600)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            d.finalised_parts(&SeriesKey::new("m", Some("ep")), 3600)
                .await
                .unwrap(),
            Some(vec!["a".to_string()])
        );
        assert_eq!(
            d.finalised_parts(&SeriesKey::new("m", Some("ep")), 7200)
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn the_watermark_is_the_newest_time_any_replica_saw() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (durable(dir.path()), durable(dir.path()));
        assert_eq!(a.newest_event_time().await.unwrap(), None);
        a.note_event_time(100).await.unwrap();
        b.note_event_time(250).await.unwrap();
        a.note_event_time(90).await.unwrap();
        assert_eq!(a.newest_event_time().await.unwrap(), Some(250));
    }

    /// Stopped replicas' watermarks (here: one written long ago, and one from before keys
    /// recorded when) are folded into the retired watermark and removed; the newest time stays.
    #[tokio::test]
    async fn quiet_replicas_watermarks_are_retired_and_the_newest_time_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = durable(dir.path());
        a.note_event_time(100).await.unwrap();
        let long_ago = now_ms() - 3_600_000;
        a.store
            .put("watermark/gone-1", format!("300 {long_ago}").into_bytes())
            .await
            .unwrap();
        a.store
            .put("watermark/gone-2", b"200".to_vec())
            .await
            .unwrap();
        let b = durable(dir.path());
        b.note_event_time(250).await.unwrap();
        assert_eq!(a.newest_event_time().await.unwrap(), Some(300));
        let mut left = a.store.list("watermark/").await.unwrap();
        left.sort();
        let mut expected = vec![
            RETIRED_WATERMARK.to_string(),
            format!("watermark/{}", a.replica),
            format!("watermark/{}", b.replica),
        ];
        expected.sort();
        assert_eq!(left, expected);
        assert_eq!(
            a.store.get(RETIRED_WATERMARK).await.unwrap().as_deref(),
            Some(&b"300"[..])
        );
        assert_eq!(b.newest_event_time().await.unwrap(), Some(300));
    }
}

//! The state store in a local directory: one file per key, for driftd on a single machine.
//!
//! ```text
//! <root>/ledger/ab12…                 a key's content, exactly the bytes that were put
//! <root>/parts/3/ep/1700000000/ab12…
//! <root>/ledger/.ab12….<random>.tmp   a write in progress (or left by a crash); never listed
//! <root>/.driftd-store/locks/00..63   lock files, one per stripe of keys
//! ```
//!
//! Every write goes to a temporary file beside its target, which is fsynced, then renamed over
//! the target ([`put`](LocalStore::put), [`replace`](LocalStore::replace)) or hard-linked to it
//! ([`put_new`](LocalStore::put_new): `link` fails if the target exists, atomically, which is
//! what makes "create only if absent" safe across processes), and then the directory is fsynced.
//! A reader therefore sees the old content or the new, never a partial file, and a write is
//! durable once it returns. Directories a write creates are fsynced into their parents too.
//!
//! `put`, `replace` and `delete` of a key run under an exclusive lock (`flock`, through
//! [`File::lock`]) on the key's stripe lock file, so a compare-and-swap's read-compare-write is
//! atomic against every other writer of the key, in this process or another sharing the
//! directory. Readers take no lock: a rename swaps the whole file at once. The lock files are
//! never renamed or deleted, so every writer locks the same inode. A lock is released when its
//! file is closed, and by the kernel if the process dies.
//!
//! `delete` removes directories that become empty, so per-window directories do not pile up. A
//! write that loses its freshly made directory to such a prune makes it again.
//!
//! The blocking file I/O runs on tokio's blocking pool. A caller that stops waiting (a dropped
//! future) does not stop an operation already started: it completes, whole.
//!
//! Limits: a key cannot also be a "directory" of other keys (`a` and `a/b`), since one path
//! cannot be both a file and a directory; such a write fails with an error saying so. A crash
//! mid-write can leave a `.…tmp` file behind; it is never listed or read, and is harmless.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use twox_hash::XxHash64;

use super::{StoreError, Version, check_key, check_prefix};

/// The store's own files, beside the keys. Keys cannot start with '.', so it cannot clash.
const META_DIR: &str = ".driftd-store";
const LOCKS_DIR: &str = "locks";
/// Keys hash into this many lock files: writers of different keys rarely wait for each other,
/// and the number of lock files stays fixed however many keys come and go.
const LOCK_STRIPES: u64 = 64;
/// How often a write re-makes a directory that a concurrent `delete` pruned under it.
const DIR_RACE_RETRIES: usize = 100;
const LOCK_SEED: u64 = 0x6c6f_636b;
const VERSION_SEEDS: [u64; 2] = [0x7665_7273_696f_6e31, 0x7665_7273_696f_6e32];

/// The state store in a local directory. Cheap to clone; clones share the directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: Arc<Path>,
}

/// An I/O failure inside a blocking operation, already described with its path.
struct Fail {
    message: String,
    kind: ErrorKind,
}

trait At<T> {
    /// Names what failed on which path.
    fn at(self, what: &str, path: &Path) -> Result<T, Fail>;
}

impl<T> At<T> for io::Result<T> {
    fn at(self, what: &str, path: &Path) -> Result<T, Fail> {
        self.map_err(|error| {
            let hint = match error.kind() {
                ErrorKind::NotADirectory | ErrorKind::IsADirectory => {
                    " (a local state store cannot hold a key and also keys under it, such as \
                     `a` and `a/b`)"
                }
                _ => "",
            };
            Fail {
                message: format!("{what} {}: {error}{hint}", path.display()),
                kind: error.kind(),
            }
        })
    }
}

/// Whether an I/O error may go away by itself: a full disk or quota (someone frees space), a
/// busy resource, an interrupted or timed-out call.
fn retryable_kind(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Interrupted
            | ErrorKind::WouldBlock
            | ErrorKind::TimedOut
            | ErrorKind::StorageFull
            | ErrorKind::QuotaExceeded
            | ErrorKind::ResourceBusy
    )
}

/// The errors that mean "no such key": nothing there, or a path through a file or ending at a
/// directory (keys are files, so neither can be a key).
fn is_absent(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::IsADirectory
    )
}

/// The version of some content: a 128-bit hash of it, with its length.
fn version_of(bytes: &[u8]) -> Version {
    let [a, b] = VERSION_SEEDS.map(|seed| XxHash64::oneshot(seed, bytes));
    Version::new(format!("{:x}-{a:016x}{b:016x}", bytes.len()))
}

/// Makes the directory's entries (a rename, a link, a removal, a new file) durable.
fn sync_dir(dir: &Path) -> Result<(), Fail> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .at("fsync directory", dir)
}

/// Writes `bytes` to a new file at `path` and fsyncs it; removes it again if that fails.
fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if written.is_err() {
        let _ = fs::remove_file(path);
    }
    written
}

fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, Fail> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if is_absent(e.kind()) => Ok(None),
        Err(e) => Err(e).at("read", path),
    }
}

impl LocalStore {
    /// Opens the store in `dir`, creating the directory if needed.
    pub fn open(dir: PathBuf) -> Result<Self, StoreError> {
        let invalid = |reason: String| StoreError::InvalidLocation {
            location: dir.display().to_string(),
            reason,
        };
        let root = std::path::absolute(&dir)
            .map_err(|e| invalid(format!("cannot make the path absolute: {e}")))?;
        fs::create_dir_all(root.join(META_DIR).join(LOCKS_DIR))
            .map_err(|e| invalid(format!("cannot create the state directory: {e}")))?;
        // The directories just made, into their parents; best effort for the parent, which
        // driftd may not be allowed to open.
        sync_dir(&root.join(META_DIR)).map_err(|f| invalid(f.message))?;
        sync_dir(&root).map_err(|f| invalid(f.message))?;
        if let Some(parent) = root.parent() {
            let _ = sync_dir(parent);
        }
        Ok(LocalStore {
            root: Arc::from(root),
        })
    }

    /// The directory the store is in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory, for logs.
    pub fn describe(&self) -> String {
        self.root.display().to_string()
    }

    /// See [`StateStore::put`](super::StateStore::put).
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.check(key, check_key(key))?;
        self.blocking("put", key, move |store, key| {
            let _lock = store.lock(key)?;
            store.write_over(key, &bytes)
        })
        .await
    }

    /// See [`StateStore::put_new`](super::StateStore::put_new).
    pub async fn put_new(&self, key: &str, bytes: Vec<u8>) -> Result<bool, StoreError> {
        self.check(key, check_key(key))?;
        self.blocking("put_new", key, move |store, key| {
            store.link_new(key, &bytes)
        })
        .await
    }

    /// See [`StateStore::get`](super::StateStore::get).
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.check(key, check_key(key))?;
        self.blocking("get", key, |store, key| read_if_present(&store.path(key)))
            .await
    }

    /// See [`StateStore::get_versioned`](super::StateStore::get_versioned).
    pub async fn get_versioned(&self, key: &str) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        self.check(key, check_key(key))?;
        self.blocking("get", key, |store, key| {
            Ok(read_if_present(&store.path(key))?.map(|bytes| {
                let version = version_of(&bytes);
                (bytes, version)
            }))
        })
        .await
    }

    /// See [`StateStore::replace`](super::StateStore::replace).
    pub async fn replace(
        &self,
        key: &str,
        bytes: Vec<u8>,
        expected: &Version,
    ) -> Result<bool, StoreError> {
        self.check(key, check_key(key))?;
        let expected = expected.clone();
        self.blocking("replace", key, move |store, key| {
            let _lock = store.lock(key)?;
            match read_if_present(&store.path(key))? {
                Some(current) if version_of(&current) == expected => {
                    store.write_over(key, &bytes)?;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
        .await
    }

    /// See [`StateStore::list`](super::StateStore::list).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.check(prefix, check_prefix(prefix))?;
        self.blocking("list", prefix, |store, prefix| store.list_blocking(prefix))
            .await
    }

    /// See [`StateStore::delete`](super::StateStore::delete).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.check(key, check_key(key))?;
        self.blocking("delete", key, |store, key| {
            let _lock = store.lock(key)?;
            let path = store.path(key);
            match fs::remove_file(&path) {
                Ok(()) => {
                    sync_dir(parent_of(&path))?;
                    store.prune(key);
                    Ok(())
                }
                Err(e) if is_absent(e.kind()) => Ok(()),
                Err(e) => Err(e).at("remove", &path),
            }
        })
        .await
    }

    fn check(&self, key: &str, checked: Result<(), &'static str>) -> Result<(), StoreError> {
        checked.map_err(|reason| StoreError::InvalidKey {
            store: self.describe(),
            key: key.to_string(),
            reason,
        })
    }

    /// Runs `work` on the blocking pool and names this store, `op` and `key` in its error.
    async fn blocking<T, F>(&self, op: &'static str, key: &str, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&LocalStore, &str) -> Result<T, Fail> + Send + 'static,
    {
        let store = self.clone();
        let owned_key = key.to_string();
        let joined = tokio::task::spawn_blocking(move || work(&store, &owned_key)).await;
        let (message, retryable) = match joined {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(fail)) => (fail.message, retryable_kind(fail.kind)),
            Err(join) => (format!("the blocking file task failed: {join}"), false),
        };
        Err(StoreError::Failed {
            store: self.describe(),
            op,
            key: key.to_string(),
            message,
            retryable,
        })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Takes the exclusive lock of `key`'s stripe; held until the returned file is dropped.
    fn lock(&self, key: &str) -> Result<File, Fail> {
        let stripe = XxHash64::oneshot(LOCK_SEED, key.as_bytes()) % LOCK_STRIPES;
        let dir = self.root.join(META_DIR).join(LOCKS_DIR);
        let path = dir.join(format!("{stripe:02}"));
        let open = || {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
        };
        let file = match open() {
            // Someone removed the store's own directory while driftd runs: make it again.
            Err(e) if e.kind() == ErrorKind::NotFound => fs::create_dir_all(&dir)
                .at("create directory", &dir)
                .and_then(|()| open().at("open lock file", &path))?,
            opened => opened.at("open lock file", &path)?,
        };
        file.lock().at("lock", &path)?;
        Ok(file)
    }

    /// Makes the directories above `key`'s file, fsyncing each new one into its parent.
    fn make_dirs(&self, key: &str) -> Result<(), Fail> {
        let segments: Vec<&str> = key.split('/').collect();
        let dirs = &segments[..segments.len() - 1];
        let mut attempts = 0;
        'again: loop {
            let mut dir = self.root.to_path_buf();
            for segment in dirs {
                let parent = dir.clone();
                dir.push(segment);
                match fs::create_dir(&dir) {
                    Ok(()) => sync_dir(&parent)?,
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                    // A concurrent delete pruned a directory above this one: start over.
                    Err(e) if e.kind() == ErrorKind::NotFound && attempts < DIR_RACE_RETRIES => {
                        attempts += 1;
                        continue 'again;
                    }
                    Err(e) => return Err(e).at("create directory", &dir),
                }
            }
            return Ok(());
        }
    }

    /// Writes `bytes` to a fresh temporary file beside `key`'s file, fsynced; its path.
    fn write_temp(&self, key: &str, bytes: &[u8]) -> Result<PathBuf, Fail> {
        let path = self.path(key);
        let dir = parent_of(&path);
        let name = key.rsplit('/').next().unwrap_or(key);
        let mut attempts = 0;
        loop {
            let temp = dir.join(format!(".{name}.{:016x}.tmp", fastrand::u64(..)));
            match write_synced(&temp, bytes) {
                Ok(()) => return Ok(temp),
                // The directory is not there yet, or a concurrent delete pruned it (it cannot
                // prune it once the temporary file is in it).
                Err(e) if e.kind() == ErrorKind::NotFound && attempts < DIR_RACE_RETRIES => {
                    attempts += 1;
                    self.make_dirs(key)?;
                }
                // 64 random bits collided with another writer's temporary file.
                Err(e) if e.kind() == ErrorKind::AlreadyExists && attempts < DIR_RACE_RETRIES => {
                    attempts += 1;
                }
                Err(e) => return Err(e).at("write temporary file", &temp),
            }
        }
    }

    /// Puts `bytes` in place of `key`'s file, durably. The caller holds the key's lock.
    fn write_over(&self, key: &str, bytes: &[u8]) -> Result<(), Fail> {
        let temp = self.write_temp(key, bytes)?;
        let path = self.path(key);
        if let Err(e) = fs::rename(&temp, &path) {
            let _ = fs::remove_file(&temp);
            return Err(e).at("rename a temporary file to", &path);
        }
        sync_dir(parent_of(&path))
    }

    /// Creates `key`'s file with `bytes` if it does not exist: whether it did.
    fn link_new(&self, key: &str, bytes: &[u8]) -> Result<bool, Fail> {
        let path = self.path(key);
        // The common refusal (a redelivered object's ledger entry) without writing anything;
        // the link below still decides when the key is created meanwhile.
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                return Err(io::Error::from(ErrorKind::IsADirectory)).at("create", &path);
            }
            Ok(_) => return Ok(false),
            Err(_) => {}
        }
        let temp = self.write_temp(key, bytes)?;
        let linked = fs::hard_link(&temp, &path);
        // The key, if linked, has its own name for the file now; the temporary name goes.
        if let Err(e) = fs::remove_file(&temp) {
            tracing::warn!(
                path = %temp.display(),
                error = %e,
                "cannot remove a temporary file of the state store"
            );
        }
        match linked {
            Ok(()) => {
                sync_dir(parent_of(&path))?;
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                    return Err(io::Error::from(ErrorKind::IsADirectory)).at("create", &path);
                }
                Ok(false)
            }
            Err(e) => Err(e).at("link a temporary file to", &path),
        }
    }

    /// Removes the directories above `key` that are empty now, deepest first. Best effort: a
    /// directory that is not empty (or already gone) ends it.
    fn prune(&self, key: &str) {
        let mut dir = parent_of(&self.path(key)).to_path_buf();
        while dir != *self.root && dir.starts_with(&self.root) {
            if fs::remove_dir(&dir).is_err() {
                return;
            }
            let parent = parent_of(&dir).to_path_buf();
            let _ = sync_dir(&parent);
            dir = parent;
        }
    }

    fn list_blocking(&self, prefix: &str) -> Result<Vec<String>, Fail> {
        // Walk the deepest directory the prefix names whole; its last, partial segment filters
        // that directory's entries.
        let (base, partial) = match prefix.rfind('/') {
            Some(i) => (&prefix[..=i], &prefix[i + 1..]),
            None => ("", prefix),
        };
        let mut keys = Vec::new();
        let mut pending = vec![(self.root.join(base), base.to_string(), partial)];
        while let Some((dir, dir_key, starts_with)) = pending.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                // Not there (nothing under the prefix), or pruned while we walk.
                Err(e) if is_absent(e.kind()) => continue,
                Err(e) => return Err(e).at("read directory", &dir),
            };
            for entry in entries {
                let entry = entry.at("read directory", &dir)?;
                let name = entry.file_name();
                // Temporary files, the store's own files, and names no key can have.
                let Some(name) = name.to_str() else { continue };
                if name.starts_with('.') || !name.starts_with(starts_with) {
                    continue;
                }
                let key = format!("{dir_key}{name}");
                match entry.file_type() {
                    Ok(t) if t.is_dir() => pending.push((entry.path(), format!("{key}/"), "")),
                    Ok(t) if t.is_file() && check_key(&key).is_ok() => keys.push(key),
                    Ok(_) => {}
                    Err(e) if is_absent(e.kind()) => {}
                    Err(e) => return Err(e).at("read the type of", &entry.path()),
                }
            }
        }
        keys.sort_unstable();
        Ok(keys)
    }
}

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .expect("a key's file is inside the store's directory")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn store() -> (tempfile::TempDir, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path().join("state")).unwrap();
        (dir, store)
    }

    /// Every file and directory under the root, relative, except the store's own directory.
    fn files_on_disk(root: &Path) -> BTreeSet<String> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
            for entry in fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                let path = entry.path();
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                if rel == META_DIR {
                    continue;
                }
                if entry.file_type().unwrap().is_dir() {
                    walk(root, &path, out);
                    out.insert(format!("{rel}/"));
                } else {
                    out.insert(rel);
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(root, root, &mut out);
        out
    }

    #[tokio::test]
    async fn put_get_list_and_delete() {
        let (_dir, store) = store();
        assert_eq!(store.get("ledger/a1").await.unwrap(), None);
        assert_eq!(store.list("").await.unwrap(), Vec::<String>::new());

        for key in [
            "parts/3/ep/1700000000/bb",
            "ledger/b2",
            "parts/30/x",
            "ledger/a1",
            "parts/3/ep/1700000000/aa",
            "lease",
        ] {
            store.put(key, key.as_bytes().to_vec()).await.unwrap();
        }
        store.put("ledger/a1", b"second".to_vec()).await.unwrap();
        assert_eq!(
            store.get("ledger/a1").await.unwrap().as_deref(),
            Some(&b"second"[..])
        );
        assert_eq!(
            store.get("parts/30/x").await.unwrap().as_deref(),
            Some(&b"parts/30/x"[..])
        );
        // Through a file, or at a directory: no such key.
        assert_eq!(store.get("lease/x").await.unwrap(), None);
        assert_eq!(store.get("parts/3").await.unwrap(), None);

        assert_eq!(
            store.list("").await.unwrap(),
            [
                "lease",
                "ledger/a1",
                "ledger/b2",
                "parts/3/ep/1700000000/aa",
                "parts/3/ep/1700000000/bb",
                "parts/30/x"
            ]
        );
        // String prefixes, as in S3.
        assert_eq!(
            store.list("parts/3").await.unwrap(),
            [
                "parts/3/ep/1700000000/aa",
                "parts/3/ep/1700000000/bb",
                "parts/30/x"
            ]
        );
        assert_eq!(
            store.list("parts/3/").await.unwrap(),
            ["parts/3/ep/1700000000/aa", "parts/3/ep/1700000000/bb"]
        );
        assert_eq!(store.list("ledger/b").await.unwrap(), ["ledger/b2"]);
        assert_eq!(store.list("nothing/").await.unwrap(), Vec::<String>::new());
        assert_eq!(store.list("lease/").await.unwrap(), Vec::<String>::new());

        store.delete("ledger/a1").await.unwrap();
        store.delete("ledger/a1").await.unwrap();
        store.delete("never/was").await.unwrap();
        store.delete("lease/under/a/file").await.unwrap();
        assert_eq!(store.get("ledger/a1").await.unwrap(), None);
        assert_eq!(store.list("ledger/").await.unwrap(), ["ledger/b2"]);

        // Deleting the last key of a directory removes the directories left empty.
        store.delete("parts/3/ep/1700000000/aa").await.unwrap();
        store.delete("parts/3/ep/1700000000/bb").await.unwrap();
        assert_eq!(
            files_on_disk(store.root()),
            [
                "lease",
                "ledger/",
                "ledger/b2",
                "parts/",
                "parts/30/",
                "parts/30/x"
            ]
            .map(String::from)
            .into()
        );
        assert_eq!(store.describe(), store.root().display().to_string());
    }

    #[tokio::test]
    async fn put_new_creates_once() {
        let (_dir, store) = store();
        assert!(store.put_new("lease/w1", b"first".to_vec()).await.unwrap());
        assert!(!store.put_new("lease/w1", b"second".to_vec()).await.unwrap());
        assert_eq!(
            store.get("lease/w1").await.unwrap().as_deref(),
            Some(&b"first"[..])
        );
        store.delete("lease/w1").await.unwrap();
        assert!(store.put_new("lease/w1", b"third".to_vec()).await.unwrap());
        assert_eq!(
            store.get("lease/w1").await.unwrap().as_deref(),
            Some(&b"third"[..])
        );
    }

    #[tokio::test]
    async fn replace_writes_only_over_the_expected_version() {
        let (_dir, store) = store();
        store.put("rules/r1", b"v1".to_vec()).await.unwrap();
        let (bytes, v1) = store.get_versioned("rules/r1").await.unwrap().unwrap();
        assert_eq!(bytes, b"v1");

        assert!(
            store
                .replace("rules/r1", b"v2".to_vec(), &v1)
                .await
                .unwrap()
        );
        let (bytes, v2) = store.get_versioned("rules/r1").await.unwrap().unwrap();
        assert_eq!(bytes, b"v2");
        assert_ne!(v1, v2);

        // v1 is stale now: refused, and the content stays.
        assert!(
            !store
                .replace("rules/r1", b"v3".to_vec(), &v1)
                .await
                .unwrap()
        );
        assert_eq!(store.get("rules/r1").await.unwrap().unwrap(), b"v2");

        // A plain put also makes an earlier version stale.
        store.put("rules/r1", b"v4".to_vec()).await.unwrap();
        assert!(
            !store
                .replace("rules/r1", b"v5".to_vec(), &v2)
                .await
                .unwrap()
        );

        // A deleted or never-written key has no version to match.
        let (_, v4) = store.get_versioned("rules/r1").await.unwrap().unwrap();
        store.delete("rules/r1").await.unwrap();
        assert!(
            !store
                .replace("rules/r1", b"v6".to_vec(), &v4)
                .await
                .unwrap()
        );
        assert_eq!(store.get("rules/r1").await.unwrap(), None);
        assert!(
            !store
                .replace("rules/none", b"x".to_vec(), &v4)
                .await
                .unwrap()
        );
        assert_eq!(store.get("rules/none").await.unwrap(), None);
        assert_eq!(store.get_versioned("rules/none").await.unwrap(), None);
    }

    /// Each task opens its own `LocalStore`, as another process would: only the file system
    /// (the `link`) can decide the race.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_put_new_has_exactly_one_winner() {
        let (_dir, store) = store();
        for round in 0..10 {
            let key = format!("lease/w{round}");
            let mut tasks = tokio::task::JoinSet::new();
            let start = Arc::new(tokio::sync::Barrier::new(8));
            for task in 0..8u8 {
                let store = LocalStore::open(store.root().to_path_buf()).unwrap();
                let key = key.clone();
                let start = start.clone();
                tasks.spawn(async move {
                    start.wait().await;
                    let won = store.put_new(&key, vec![task; 1000]).await.unwrap();
                    (task, won)
                });
            }
            let winners: Vec<u8> = tasks
                .join_all()
                .await
                .into_iter()
                .filter_map(|(task, won)| won.then_some(task))
                .collect();
            assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
            assert_eq!(
                store.get(&key).await.unwrap().unwrap(),
                vec![winners[0]; 1000],
                "round {round}: the content is not the winner's"
            );
        }
        assert_eq!(store.list("lease/").await.unwrap().len(), 10);
    }

    /// Read, add one, compare-and-swap, again on conflict: no increment may be lost. Each task
    /// has its own `LocalStore`, as another process would, so only the lock file serialises.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_increments_through_replace_are_all_kept() {
        const TASKS: u64 = 8;
        const EACH: u64 = 25;
        let (_dir, store) = store();
        store.put("counter", b"0".to_vec()).await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..TASKS {
            let store = LocalStore::open(store.root().to_path_buf()).unwrap();
            tasks.spawn(async move {
                let mut conflicts = 0u64;
                for _ in 0..EACH {
                    loop {
                        let (bytes, version) =
                            store.get_versioned("counter").await.unwrap().unwrap();
                        let n: u64 = std::str::from_utf8(&bytes).unwrap().parse().unwrap();
                        let next = (n + 1).to_string().into_bytes();
                        if store.replace("counter", next, &version).await.unwrap() {
                            break;
                        }
                        conflicts += 1;
                    }
                }
                conflicts
            });
        }
        let conflicts: u64 = tasks.join_all().await.into_iter().sum();
        let total = store.get("counter").await.unwrap().unwrap();
        assert_eq!(
            std::str::from_utf8(&total).unwrap(),
            (TASKS * EACH).to_string(),
            "lost increments ({conflicts} conflicts retried)"
        );
    }

    #[tokio::test]
    async fn bad_keys_are_refused_before_any_io() {
        let (_dir, store) = store();
        let v = version_of(b"");
        for key in [
            "", "/abs", "a//b", "a/", "..", "a/../b", "./a", ".hidden", "a/.b.tmp", "a\\b", "a\0b",
        ] {
            let errors = [
                store.put(key, vec![]).await.unwrap_err(),
                store.put_new(key, vec![]).await.unwrap_err(),
                store.get(key).await.unwrap_err(),
                store.get_versioned(key).await.unwrap_err(),
                store.replace(key, vec![], &v).await.unwrap_err(),
                store.delete(key).await.unwrap_err(),
            ];
            for error in errors {
                assert!(
                    matches!(&error, StoreError::InvalidKey { key: k, .. } if k == key),
                    "{key:?}: {error}"
                );
                assert!(!error.is_retryable());
                assert!(error.to_string().contains(&store.describe()), "{error}");
            }
        }
        for prefix in ["/", "/a", "a//", "../", ".x"] {
            let error = store.list(prefix).await.unwrap_err();
            assert!(
                matches!(error, StoreError::InvalidKey { .. }),
                "{prefix:?}: {error}"
            );
        }
        assert_eq!(files_on_disk(store.root()), BTreeSet::new());
    }

    #[tokio::test]
    async fn temporary_files_are_never_listed_or_left_behind() {
        let (_dir, store) = store();
        store.put("ledger/a", b"1".to_vec()).await.unwrap();
        store.put("ledger/a", b"2".to_vec()).await.unwrap();
        assert!(store.put_new("ledger/b", b"1".to_vec()).await.unwrap());
        assert!(!store.put_new("ledger/b", b"2".to_vec()).await.unwrap());
        let (_, v) = store.get_versioned("ledger/a").await.unwrap().unwrap();
        assert!(store.replace("ledger/a", b"3".to_vec(), &v).await.unwrap());
        assert!(!store.replace("ledger/a", b"4".to_vec(), &v).await.unwrap());
        assert_eq!(
            files_on_disk(store.root()),
            ["ledger/", "ledger/a", "ledger/b"].map(String::from).into()
        );

        // What a crash mid-write leaves: a temporary file beside the keys.
        fs::write(
            store.root().join("ledger/.c.0123456789abcdef.tmp"),
            b"partial",
        )
        .unwrap();
        assert_eq!(store.list("").await.unwrap(), ["ledger/a", "ledger/b"]);
        assert_eq!(
            store.list("ledger/").await.unwrap(),
            ["ledger/a", "ledger/b"]
        );
        assert_eq!(store.get("ledger/c").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_key_cannot_also_be_a_directory_of_keys() {
        let (_dir, store) = store();
        store.put("a", b"1".to_vec()).await.unwrap();
        let error = store.put("a/b", b"2".to_vec()).await.unwrap_err();
        assert!(!error.is_retryable());
        let text = error.to_string();
        assert!(
            text.contains("\"a/b\"") && text.contains("`a` and `a/b`"),
            "{text}"
        );

        store.put("c/d", b"1".to_vec()).await.unwrap();
        for error in [
            store.put("c", b"2".to_vec()).await.unwrap_err(),
            store.put_new("c", b"2".to_vec()).await.unwrap_err(),
        ] {
            assert!(error.to_string().contains("`a` and `a/b`"), "{error}");
        }
        assert_eq!(store.list("").await.unwrap(), ["a", "c/d"]);
    }

    #[test]
    fn open_creates_the_directory_and_refuses_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("deep/state");
        LocalStore::open(root.clone()).unwrap();
        assert!(root.join(META_DIR).join(LOCKS_DIR).is_dir());

        let file = dir.path().join("file");
        fs::write(&file, b"").unwrap();
        let error = LocalStore::open(file.clone()).unwrap_err();
        assert!(
            matches!(error, StoreError::InvalidLocation { .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains(&file.display().to_string()),
            "{error}"
        );
    }

    #[test]
    fn versions_follow_the_content() {
        assert_eq!(version_of(b"abc"), version_of(b"abc"));
        assert_ne!(version_of(b"abc"), version_of(b"abd"));
        assert_ne!(version_of(b""), version_of(b"\0"));
    }
}

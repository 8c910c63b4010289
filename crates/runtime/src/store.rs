//! The checkpoint store: where checkpoints live.
//!
//! A [`CheckpointStore`] is a small *blocking* key/value API over the
//! [`object_store`] crate: a local directory by default, or S3 with the `s3`
//! feature (`s3://bucket/prefix`). It is meant to be called from plain
//! threads (timely workers, the checkpoint coordinator), never from inside a
//! tokio runtime: each store owns a private one-worker tokio runtime and
//! blocks on it.
//!
//! Keys are relative, `/`-separated paths (`ckpt/000042/worker-0/state`).
//! Every [`put`](CheckpointStore::put) is atomic: a reader sees the whole new
//! object or the old one, never a torn write (S3 PUT semantics; the local
//! directory writes a temporary file and renames it into place).
//!
//! ```
//! use iotflow_runtime::store::CheckpointStore;
//! # let dir = tempfile::tempdir().expect("tempdir");
//! # let root = dir.path().join("ckpt");
//! let store = CheckpointStore::open(root.to_str().expect("utf-8"))?;
//! store.put("ckpt/1/state", b"hello".to_vec())?;
//! assert_eq!(store.get("ckpt/1/state")?, Some(b"hello".to_vec()));
//! assert_eq!(store.list("ckpt")?, vec!["ckpt/1/state".to_string()]);
//! store.delete_prefix("ckpt")?;
//! assert_eq!(store.get("ckpt/1/state")?, None);
//! # Ok::<(), iotflow_runtime::store::StoreError>(())
//! ```

use std::fmt;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// Boxed source error (keeps `object_store`'s types out of this API).
type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the checkpoint store. Each says which location (and path) it
/// concerns, whose fault it is, and — through [`StoreError::is_retryable`] —
/// whether trying again later may help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The location string cannot be used (user error: fix the
    /// configuration).
    #[error("checkpoint location {location:?}: {reason}")]
    InvalidLocation {
        /// The location as given.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A path given to an operation is not a valid relative,
    /// `/`-separated path (caller error).
    #[error("checkpoint store {location}: invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The store's location.
        location: String,
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The local checkpoint directory could not be created or opened.
    #[error("checkpoint directory {location}: {source}")]
    Directory {
        /// The location as given.
        location: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The backend (local file system or S3) failed an operation. Transient
    /// S3 failures (connection errors, timeouts, 5xx) were already retried
    /// with backoff; see [`StoreError::is_retryable`].
    #[error(
        "checkpoint store {location}: {op} {path:?} failed ({}): {source}",
        if *.retryable { "a retry may help" } else { "a retry will not help" }
    )]
    Backend {
        /// The store's location.
        location: String,
        /// The operation (`put`, `get`, `list`, `delete`).
        op: &'static str,
        /// The path (or prefix) of the operation.
        path: String,
        /// Whether trying again later may help (transport and server errors)
        /// or not (missing permissions, bad credentials, invalid request).
        retryable: bool,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// The store's private tokio runtime could not be started (internal
    /// error: the process is out of threads or file descriptors).
    #[error("checkpoint store {location}: cannot start its I/O runtime: {source}")]
    Runtime {
        /// The location as given.
        location: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A blocking store method was called from inside a tokio runtime
    /// (internal bug: call it from a plain thread or `spawn_blocking`).
    #[error(
        "checkpoint store {location}: {op} called from inside an async runtime; \
         the store is blocking and must be used from a plain thread"
    )]
    InsideAsyncRuntime {
        /// The store's location.
        location: String,
        /// The operation.
        op: &'static str,
    },
}

impl StoreError {
    /// Whether trying the same operation again later may succeed (a
    /// transient backend failure) — as opposed to a configuration error, a
    /// bad path, missing permissions or a bug.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Backend { retryable, .. } => *retryable,
            StoreError::Directory { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
            ),
            StoreError::InvalidLocation { .. }
            | StoreError::InvalidPath { .. }
            | StoreError::Runtime { .. }
            | StoreError::InsideAsyncRuntime { .. } => false,
        }
    }
}

/// Where checkpoints live: a local directory (default) or S3 (feature `s3`).
///
/// Blocking: every method runs the request to completion on the store's
/// private tokio runtime, so call them from plain threads only (a call from
/// inside a tokio runtime returns [`StoreError::InsideAsyncRuntime`]).
/// `CheckpointStore` is `Send + Sync`; share one behind an `Arc`.
pub struct CheckpointStore {
    store: Arc<dyn ObjectStore>,
    /// Always `Some` until drop, which shuts it down without blocking.
    runtime: Option<tokio::runtime::Runtime>,
    location: String,
}

impl fmt::Debug for CheckpointStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointStore")
            .field("location", &self.location)
            .field("backend", &format_args!("{}", self.store))
            .finish()
    }
}

impl Drop for CheckpointStore {
    fn drop(&mut self) {
        // `shutdown_background` does not block, so dropping a store is safe
        // anywhere, even inside an async context.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl CheckpointStore {
    /// Opens the store at `location`:
    ///
    /// - a local directory path (created if missing; a `file://` prefix is
    ///   accepted), or
    /// - `s3://bucket/prefix` (feature `s3`), configured from the standard
    ///   environment variables: `AWS_ENDPOINT_URL` or `AWS_ENDPOINT`,
    ///   `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
    ///   `AWS_REGION` (default `us-east-1`), `AWS_ALLOW_HTTP=true` for an
    ///   `http://` endpoint. Requests are path-style. Connection failures,
    ///   timeouts and server errors are retried with backoff for at most
    ///   about 8 s (connect timeout 2 s, request timeout 60 s), so a dead
    ///   endpoint fails within about 10 s; `AWS_CONNECT_TIMEOUT` and
    ///   `AWS_TIMEOUT` (e.g. `5s`) override those two.
    ///
    /// Without the `s3` feature an `s3://` location is an
    /// [`StoreError::InvalidLocation`] naming the feature. Opening does no
    /// network request.
    pub fn open(location: &str) -> Result<Self, StoreError> {
        Self::open_with_env(location, std::env::vars())
    }

    /// [`open`](Self::open) with the environment given explicitly (tests
    /// cannot set process environment variables safely).
    fn open_with_env(
        location: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, StoreError> {
        let invalid = |reason: String| StoreError::InvalidLocation {
            location: location.to_string(),
            reason,
        };
        let store: Arc<dyn ObjectStore> = if let Some(rest) = location.strip_prefix("s3://") {
            s3::open(location, rest, env)?
        } else if let Some(path) = location.strip_prefix("file://") {
            open_local(location, path)?
        } else if let Some((scheme, _)) = location.split_once("://") {
            return Err(invalid(format!(
                "unsupported scheme {scheme:?}: use a local directory, file:// or s3://"
            )));
        } else {
            open_local(location, location)?
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("iotflow-store-io")
            .enable_all()
            .build()
            .map_err(|source| StoreError::Runtime {
                location: location.to_string(),
                source,
            })?;
        Ok(CheckpointStore {
            store,
            runtime: Some(runtime),
            location: location.to_string(),
        })
    }

    /// Writes `bytes` at `path` (relative, `/`-separated) atomically: readers
    /// see the whole object or the previous one, never part of it. An
    /// existing object is replaced.
    pub fn put(&self, path: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let key = self.key(path)?;
        let store = Arc::clone(&self.store);
        self.block_on("put", async move {
            store.put(&key, PutPayload::from(bytes)).await.map(|_| ())
        })?
        .map_err(|e| self.backend("put", path, e))
    }

    /// Reads `path`; `Ok(None)` when it does not exist.
    pub fn get(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key(path)?;
        let store = Arc::clone(&self.store);
        let result = self.block_on("get", async move {
            let found = store.get(&key).await?;
            found.bytes().await
        })?;
        match result {
            Ok(bytes) => Ok(Some(bytes.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.backend("get", path, e)),
        }
    }

    /// Every object under `prefix` (recursive; `""` lists the whole store),
    /// as paths relative to the store root, sorted. Prefixes match whole
    /// path segments: `ckpt/1` covers `ckpt/1/state` but not `ckpt/10/state`.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let key = self.key_or_root(prefix)?;
        let store = Arc::clone(&self.store);
        let metas = self
            .block_on("list", async move {
                store
                    .list(prefix_option(&key))
                    .map_ok(|meta| meta.location.to_string())
                    .try_collect::<Vec<String>>()
                    .await
            })?
            .map_err(|e| self.backend("list", prefix, e))?;
        let mut paths = metas;
        paths.sort_unstable();
        Ok(paths)
    }

    /// Deletes one object; a missing object is not an error.
    pub fn delete(&self, path: &str) -> Result<(), StoreError> {
        let key = self.key(path)?;
        let store = Arc::clone(&self.store);
        match self.block_on("delete", async move { store.delete(&key).await })? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.backend("delete", path, e)),
        }
    }

    /// Deletes every object under `prefix` (whole path segments, as in
    /// [`list`](Self::list); `""` empties the store). S3 deletes in bulk
    /// requests.
    pub fn delete_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        let key = self.key_or_root(prefix)?;
        let store = Arc::clone(&self.store);
        self.block_on("delete", async move {
            let locations = store
                .list(prefix_option(&key))
                .map_ok(|meta| meta.location)
                .boxed();
            store
                .delete_stream(locations)
                .try_for_each(|_| std::future::ready(Ok(())))
                .await
        })?
        .or_else(|e| match e {
            // Deleted concurrently: the goal is reached.
            object_store::Error::NotFound { .. } => Ok(()),
            e => Err(self.backend("delete", prefix, e)),
        })
    }

    /// The location as given to [`open`](Self::open) (for logs).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Parses a relative object path.
    fn key(&self, path: &str) -> Result<Path, StoreError> {
        let key = self.key_or_root(path)?;
        if key.as_ref().is_empty() {
            return Err(self.invalid_path(path, "empty path".to_string()));
        }
        Ok(key)
    }

    /// Parses a prefix; `""` is the whole store.
    fn key_or_root(&self, path: &str) -> Result<Path, StoreError> {
        let key = Path::parse(path).map_err(|e| self.invalid_path(path, e.to_string()))?;
        if key.parts().any(|p| matches!(p.as_ref(), "." | "..")) {
            return Err(self.invalid_path(path, "'.' and '..' segments are not allowed".into()));
        }
        Ok(key)
    }

    fn invalid_path(&self, path: &str, reason: String) -> StoreError {
        StoreError::InvalidPath {
            location: self.location.clone(),
            path: path.to_string(),
            reason,
        }
    }

    fn backend(&self, op: &'static str, path: &str, e: object_store::Error) -> StoreError {
        StoreError::Backend {
            location: self.location.clone(),
            op,
            path: path.to_string(),
            retryable: retryable(&e),
            source: Box::new(e),
        }
    }

    /// Runs `future` to completion on the private runtime.
    fn block_on<F>(&self, op: &'static str, future: F) -> Result<F::Output, StoreError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(StoreError::InsideAsyncRuntime {
                location: self.location.clone(),
                op,
            });
        }
        let runtime = self
            .runtime
            .as_ref()
            .expect("the runtime is only taken in drop");
        Ok(runtime.block_on(future))
    }
}

/// `None` (everything) for the root, else the prefix.
fn prefix_option(key: &Path) -> Option<&Path> {
    (!key.as_ref().is_empty()).then_some(key)
}

/// Whether an `object_store` error may go away on a later attempt.
fn retryable(e: &object_store::Error) -> bool {
    match e {
        // Transport errors and 5xx responses (after object_store's own
        // retries), local I/O errors, task failures.
        object_store::Error::Generic { .. } | object_store::Error::JoinError { .. } => true,
        // NotFound, InvalidPath, PermissionDenied, Unauthenticated,
        // NotSupported, Precondition, AlreadyExists, configuration, ...
        _ => false,
    }
}

/// A local directory store, creating the directory if missing.
fn open_local(location: &str, dir: &str) -> Result<Arc<dyn ObjectStore>, StoreError> {
    if dir.is_empty() {
        return Err(StoreError::InvalidLocation {
            location: location.to_string(),
            reason: "empty directory path".to_string(),
        });
    }
    let directory = |source| StoreError::Directory {
        location: location.to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(directory)?;
    let fs = LocalFileSystem::new_with_prefix(dir)
        .map_err(|e| directory(std::io::Error::other(e)))?
        // Deleting the last object of a directory removes the directory.
        .with_automatic_cleanup(true);
    Ok(Arc::new(fs))
}

#[cfg(not(feature = "s3"))]
mod s3 {
    use super::*;

    pub(super) fn open(
        location: &str,
        _rest: &str,
        _env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Arc<dyn ObjectStore>, StoreError> {
        Err(StoreError::InvalidLocation {
            location: location.to_string(),
            reason: "S3 checkpoints need iotflow-runtime's cargo feature `s3` \
                     (this binary was built without it)"
                .to_string(),
        })
    }
}

#[cfg(feature = "s3")]
mod s3 {
    use std::time::Duration;

    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    use object_store::prefix::PrefixStore;
    use object_store::{BackoffConfig, ClientOptions, RetryConfig};

    use super::*;

    /// Connect timeout per attempt.
    const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
    /// Whole-request timeout per attempt (checkpoints can be large).
    const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
    /// No new attempt starts after this long since the first one.
    const RETRY_TIMEOUT: Duration = Duration::from_secs(8);

    /// An S3 store for `s3://{rest}`, configured from `AWS_*` variables.
    pub(super) fn open(
        location: &str,
        rest: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Arc<dyn ObjectStore>, StoreError> {
        let invalid = |reason: String| StoreError::InvalidLocation {
            location: location.to_string(),
            reason,
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid(
                "no bucket: expected s3://bucket or s3://bucket/prefix".into(),
            ));
        }
        let prefix = Path::parse(prefix).map_err(|e| invalid(format!("bad prefix: {e}")))?;

        // Our defaults first, so that the environment can override them.
        let mut builder = AmazonS3Builder::new()
            .with_region("us-east-1")
            .with_virtual_hosted_style_request(false)
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(CONNECT_TIMEOUT)
                    .with_timeout(REQUEST_TIMEOUT),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(2),
                    base: 2.0,
                },
                max_retries: 5,
                retry_timeout: RETRY_TIMEOUT,
            });
        // The standard AWS_* variables, as AmazonS3Builder::from_env reads
        // them (AWS_ENDPOINT_URL, AWS_ENDPOINT, AWS_ACCESS_KEY_ID, ...).
        for (name, value) in env {
            if !name.starts_with("AWS_") {
                continue;
            }
            if let Ok(key) = name.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                builder = builder.with_config(key, value);
            }
        }
        let s3 = builder
            .with_bucket_name(bucket)
            // Path-style requests: `endpoint/bucket/key` (moto, MinIO, ...).
            .with_virtual_hosted_style_request(false)
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(if prefix.as_ref().is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> (tempfile::TempDir, CheckpointStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("does/not/exist/yet");
        let store = CheckpointStore::open(root.to_str().expect("utf-8 path")).expect("open");
        assert!(root.is_dir(), "open creates the directory");
        (dir, store)
    }

    /// The same round trip on any backend.
    fn round_trip(store: &CheckpointStore) {
        assert_eq!(store.list("").expect("list empty"), Vec::<String>::new());
        assert_eq!(store.get("ckpt/1/state").expect("get missing"), None);

        store.put("ckpt/1/state", b"one".to_vec()).expect("put");
        store.put("ckpt/1/offsets", b"o1".to_vec()).expect("put");
        store.put("ckpt/10/state", b"ten".to_vec()).expect("put");
        store.put("ckpt/2/a/b/deep", Vec::new()).expect("put empty");
        store.put("LATEST", b"1".to_vec()).expect("put");

        assert_eq!(
            store.get("ckpt/1/state").expect("get"),
            Some(b"one".to_vec())
        );
        assert_eq!(store.get("ckpt/2/a/b/deep").expect("get"), Some(Vec::new()));
        assert_eq!(store.get("ckpt/1").expect("get a 'directory'"), None);

        assert_eq!(
            store.list("").expect("list all"),
            vec![
                "LATEST",
                "ckpt/1/offsets",
                "ckpt/1/state",
                "ckpt/10/state",
                "ckpt/2/a/b/deep"
            ]
        );
        // Whole segments: ckpt/1 does not cover ckpt/10.
        assert_eq!(
            store.list("ckpt/1").expect("list"),
            vec!["ckpt/1/offsets", "ckpt/1/state"]
        );
        assert_eq!(
            store.list("ckpt/1/").expect("trailing slash"),
            store.list("ckpt/1").expect("list")
        );
        assert_eq!(
            store.list("nothing/here").expect("list"),
            Vec::<String>::new()
        );

        // Overwrite replaces the whole object.
        store.put("LATEST", b"10".to_vec()).expect("overwrite");
        assert_eq!(store.get("LATEST").expect("get"), Some(b"10".to_vec()));
        store
            .put("LATEST", b"2".to_vec())
            .expect("overwrite shorter");
        assert_eq!(store.get("LATEST").expect("get"), Some(b"2".to_vec()));

        store.delete("ckpt/1/offsets").expect("delete");
        store
            .delete("ckpt/1/offsets")
            .expect("delete missing is fine");
        assert_eq!(store.get("ckpt/1/offsets").expect("get"), None);

        store.delete_prefix("ckpt/1").expect("delete_prefix");
        assert_eq!(
            store.list("").expect("list"),
            vec!["LATEST", "ckpt/10/state", "ckpt/2/a/b/deep"]
        );
        store
            .delete_prefix("nothing/here")
            .expect("empty prefix is fine");
        store.delete_prefix("").expect("delete everything");
        assert_eq!(store.list("").expect("list"), Vec::<String>::new());
    }

    #[test]
    fn local_round_trip() {
        let (_dir, store) = local();
        round_trip(&store);
    }

    #[test]
    fn file_url_and_reopen_see_the_same_objects() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("ckpt");
        let url = format!("file://{}", root.display());
        let a = CheckpointStore::open(&url).expect("open file://");
        assert_eq!(a.location(), url);
        a.put("x/y", b"z".to_vec()).expect("put");
        assert_eq!(std::fs::read(root.join("x/y")).expect("on disk"), b"z");
        let b = CheckpointStore::open(root.to_str().expect("utf-8")).expect("reopen");
        assert_eq!(b.get("x/y").expect("get"), Some(b"z".to_vec()));
        // Deleting the last object removes its now-empty directories, not
        // the root.
        b.delete_prefix("x").expect("delete_prefix");
        assert!(!root.join("x").exists());
        assert!(root.is_dir());
    }

    #[test]
    fn atomic_overwrite_is_never_torn() {
        let (_dir, store) = local();
        let store = Arc::new(store);
        let big = |b: u8| vec![b; 1 << 20];
        store.put("snap", big(b'a')).expect("put");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut reads = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let got = store.get("snap").expect("get").expect("always present");
                    assert_eq!(got.len(), 1 << 20, "torn read");
                    assert!(got.iter().all(|&b| b == got[0]), "mixed read");
                    reads += 1;
                }
                reads
            })
        };
        for i in 0..40u8 {
            store.put("snap", big(b'a' + i % 26)).expect("overwrite");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let reads = reader.join().expect("reader");
        assert!(reads > 0);
        // No temporary files are left or listed.
        assert_eq!(store.list("").expect("list"), vec!["snap"]);
    }

    #[test]
    fn bad_paths_and_locations_are_user_errors() {
        let (_dir, store) = local();
        for bad in ["", "/", "a//b", "../escape", "a/./b"] {
            let e = store.put(bad, b"x".to_vec()).expect_err(bad);
            assert!(matches!(e, StoreError::InvalidPath { .. }), "{bad:?}: {e}");
            assert!(!e.is_retryable());
        }
        let e = CheckpointStore::open("gs://bucket/x").expect_err("gs");
        assert!(e.to_string().contains("unsupported scheme"), "{e}");
        let e = CheckpointStore::open("").expect_err("empty");
        assert!(matches!(e, StoreError::InvalidLocation { .. }), "{e}");
    }

    #[test]
    fn store_is_send_sync_debug() {
        fn check<T: Send + Sync + fmt::Debug>() {}
        check::<CheckpointStore>();
        check::<StoreError>();
        let (_dir, store) = local();
        assert!(format!("{store:?}").contains("CheckpointStore"));
    }

    #[test]
    fn inside_a_runtime_is_an_error_not_a_panic() {
        let (_dir, store) = local();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let e = rt
            .block_on(async { store.get("x") })
            .expect_err("inside a runtime");
        assert!(matches!(e, StoreError::InsideAsyncRuntime { .. }), "{e}");
        // And dropping a store inside a runtime does not panic either.
        rt.block_on(async move { drop(store) });
    }

    #[cfg(not(feature = "s3"))]
    #[test]
    fn s3_without_the_feature_names_it() {
        let e = CheckpointStore::open("s3://bucket/prefix").expect_err("no s3");
        assert!(e.to_string().contains("feature `s3`"), "{e}");
    }

    #[cfg(feature = "s3")]
    #[test]
    fn s3_dead_endpoint_fails_fast_and_retryable() {
        // Port 1 on loopback: nothing listens, connections are refused.
        let env = [
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let store = CheckpointStore::open_with_env("s3://bucket/p", env).expect("open");
        let start = std::time::Instant::now();
        let e = store.get("x").expect_err("dead endpoint");
        let took = start.elapsed();
        assert!(took < std::time::Duration::from_secs(12), "took {took:?}");
        assert!(e.is_retryable(), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("s3://bucket/p") && msg.contains("\"x\""),
            "{msg}"
        );
        println!("dead endpoint failed in {took:?}: {msg}");
    }

    #[cfg(feature = "s3")]
    #[test]
    fn s3_bad_locations() {
        let e = CheckpointStore::open("s3://").expect_err("no bucket");
        assert!(e.to_string().contains("no bucket"), "{e}");
        let e = CheckpointStore::open("s3://b/a//b").expect_err("bad prefix");
        assert!(e.to_string().contains("bad prefix"), "{e}");
    }

    /// Round trip against a real S3 server (moto, started by
    /// `.ci/services.sh start`) when `IOTFLOW_TEST_S3_URL` is set.
    #[cfg(feature = "s3")]
    #[test]
    fn s3_round_trip() {
        let Ok(base) = std::env::var("IOTFLOW_TEST_S3_URL") else {
            println!("skipped: IOTFLOW_TEST_S3_URL not set");
            return;
        };
        assert!(
            std::env::var_os("AWS_ENDPOINT_URL").is_some()
                || std::env::var_os("AWS_ENDPOINT").is_some(),
            "IOTFLOW_TEST_S3_URL is set but AWS_ENDPOINT_URL is not: \
             tests only talk to a local S3 server (see .ci/services.sh)"
        );
        let unique = format!(
            "ckpt-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos()
        );
        let url = format!("{}/{unique}", base.trim_end_matches('/'));
        let store = CheckpointStore::open(&url).expect("open s3");
        round_trip(&store);

        // The prefix isolates stores: another store under the same base
        // does not see these objects, the base store does.
        store.put("k", b"v".to_vec()).expect("put");
        let sibling = CheckpointStore::open(&format!("{url}-sibling")).expect("open");
        assert_eq!(sibling.list("").expect("list"), Vec::<String>::new());
        let parent = CheckpointStore::open(&base).expect("open base");
        assert_eq!(
            parent.get(&format!("{unique}/k")).expect("get"),
            Some(b"v".to_vec())
        );
        store.delete_prefix("").expect("cleanup");
        println!("s3 round trip against {url}: ok");
    }
}

//! [`ConfigClient`]: the entry point of the configuration center.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use zedis_coord::{CoordError, Zk, ZkOptions};

use super::canary::{check_labels, effective};
use super::error::{ConfigError, Result};
use super::mirror::{ConfigMirror, MirrorOptions};
use super::mirror_target::MirrorTarget;
use super::options::{CanaryOptions, ConfigOptions, PublishOptions};
use super::paths::{check_key, check_namespace, ConfigPaths};
use super::plan::Change;
use super::record::{now_ms, ConfigRecord};
use super::session::{Keeper, Session};
use super::snapshot::{self, SnapshotFile};
use super::store::{self, read_history, read_history_version, read_key, read_namespace};
use super::value::{ConfigValue, NamespaceView, Source};
use super::view::NsView;
use super::watch::ConfigWatch;

/// A client of the configuration center. Cheap to clone; clones share the session, the views
/// and the snapshots.
///
/// Reads never hand out an older version of a key than one this client handed out before
/// (whatever the ZooKeeper server it reads from, a reconnect, or a snapshot). With
/// [`ConfigOptions::snapshot_dir`], reads fall back on the local snapshot when ZooKeeper
/// cannot be reached, and say so in [`ConfigValue::source`].
#[derive(Clone, Debug)]
pub struct ConfigClient {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub keeper: Keeper,
    pub paths: ConfigPaths,
    pub options: ConfigOptions,
    views: Mutex<HashMap<String, NsView>>,
    /// Serializes snapshot writes so that the last one written is the newest.
    save_lock: tokio::sync::Mutex<()>,
    /// Namespaces we already warned about serving from a snapshot (until ZooKeeper is back).
    warned: Mutex<HashSet<String>>,
}

impl ConfigClient {
    /// Opens a session and keeps it (a new one after expiry). If ZooKeeper is unreachable and
    /// a `snapshot_dir` is set, starts anyway — reads are served from the local snapshots and
    /// say so, writes fail with [`ConfigError::Offline`] — and keeps trying to connect in the
    /// background. Must be called within a tokio runtime.
    pub async fn connect(zk: ZkOptions, options: ConfigOptions) -> Result<ConfigClient> {
        check_options(&options)?;
        let first = match Zk::connect(&zk).await {
            Ok(session) => Some(session),
            Err(error @ CoordError::Unreachable { .. }) if options.snapshot_dir.is_some() => {
                tracing::warn!(
                    %error,
                    snapshot_dir = ?options.snapshot_dir,
                    "ZooKeeper is unreachable: serving config from local snapshots until it is back"
                );
                None
            }
            Err(e) => return Err(e.into()),
        };
        ConfigClient::build(Keeper::start(first, zk), options)
    }

    /// Uses an open session (shared with other recipes); `zk` opens its replacements after
    /// an expiry. Must be called within a tokio runtime.
    pub fn with_session(session: Zk, zk: ZkOptions, options: ConfigOptions) -> Result<ConfigClient> {
        check_options(&options)?;
        ConfigClient::build(Keeper::start(Some(session), zk), options)
    }

    fn build(keeper: Keeper, options: ConfigOptions) -> Result<ConfigClient> {
        let paths = ConfigPaths::new(&options.root)?;
        Ok(ConfigClient {
            inner: Arc::new(Inner {
                keeper,
                paths,
                options,
                views: Mutex::new(HashMap::new()),
                save_lock: tokio::sync::Mutex::new(()),
                warned: Mutex::new(HashSet::new()),
            }),
        })
    }

    pub fn options(&self) -> &ConfigOptions {
        &self.inner.options
    }

    pub fn paths(&self) -> &ConfigPaths {
        &self.inner.paths
    }

    /// Whether the client has a connected ZooKeeper session now.
    pub fn is_connected(&self) -> bool {
        self.inner.keeper.current().is_some_and(|s| s.is_connected())
    }

    /// The value of `namespace/key` as this client sees it; `None` if it does not exist or is
    /// deleted.
    ///
    /// # Cancellation safety
    /// Safe: it only reads (if dropped, the view and snapshot may have been refreshed).
    pub async fn get(&self, namespace: &str, key: &str) -> Result<Option<ConfigValue>> {
        check_namespace(namespace)?;
        check_key(key)?;
        let inner = &self.inner;
        let live = match inner.connected() {
            Some(session) => inner.read_key_live(&session, namespace, key).await,
            None => Err(ConfigError::Offline),
        };
        inner.settle(namespace, live).await?;
        Ok(inner.with_view(namespace, |view| {
            view.live(key).map(|record| ConfigValue {
                namespace: namespace.to_string(),
                key: key.to_string(),
                record: record.clone(),
                source: view.source,
            })
        }))
    }

    /// Every live key of `namespace` as this client sees it (empty if it does not exist).
    ///
    /// # Cancellation safety
    /// Safe, as for [`ConfigClient::get`].
    pub async fn list(&self, namespace: &str) -> Result<NamespaceView> {
        check_namespace(namespace)?;
        let inner = &self.inner;
        let live = match inner.connected() {
            Some(session) => inner.refresh_namespace(&session, namespace).await.map(|_| ()),
            None => Err(ConfigError::Offline),
        };
        inner.settle(namespace, live).await?;
        Ok(inner.with_view(namespace, |view| NamespaceView {
            namespace: namespace.to_string(),
            entries: view.live_entries(),
            source: view.source,
        }))
    }

    /// The namespaces that exist, sorted.
    pub async fn namespaces(&self) -> Result<Vec<String>> {
        let session = self.inner.session()?;
        store::list_namespaces(session.zk.client(), &self.inner.paths).await
    }

    /// The released versions of `namespace/key` still in its history (the last
    /// `history_limit`), newest first; deletions and abandoned canaries included.
    pub async fn history(&self, namespace: &str, key: &str) -> Result<Vec<ConfigRecord>> {
        check_namespace(namespace)?;
        check_key(key)?;
        let session = self.inner.session()?;
        let history = read_history(session.zk.client(), &self.inner.paths, namespace, key).await?;
        if history.is_empty() {
            let state = read_key(session.zk.client(), &self.inner.paths, namespace, key).await?;
            if state.released.is_none() {
                return Err(ConfigError::NotFound { namespace: namespace.to_string(), key: key.to_string() });
            }
        }
        Ok(history)
    }

    /// Publishes `value` as the next version of `namespace/key` (validated against
    /// `options.format`; compare-and-set with `options.expect_version`). Returns the new record.
    ///
    /// # Cancellation safety
    /// The write is one ZooKeeper transaction: if dropped, it happened entirely or not at all.
    pub async fn publish(
        &self,
        namespace: &str,
        key: &str,
        value: impl Into<String>,
        options: PublishOptions,
    ) -> Result<ConfigRecord> {
        let change = Change::Publish {
            value: value.into(),
            format: options.format,
            comment: options.comment,
            expect_version: options.expect_version,
        };
        self.write(namespace, key, change).await
    }

    /// Publishes the value of version `to` (from the history) again, as a new version.
    ///
    /// # Cancellation safety
    /// As for [`ConfigClient::publish`].
    pub async fn rollback(&self, namespace: &str, key: &str, to: u64) -> Result<ConfigRecord> {
        check_namespace(namespace)?;
        check_key(key)?;
        let session = self.inner.session()?;
        let from = read_history_version(session.zk.client(), &self.inner.paths, namespace, key, to)
            .await?
            .ok_or_else(|| ConfigError::NoSuchVersion { namespace: namespace.into(), key: key.into(), version: to })?;
        self.write(namespace, key, Change::Rollback { from, comment: format!("rollback to v{to}") }).await
    }

    /// Deletes `namespace/key`: a new version that says so (the history stays, so a rollback
    /// can bring the value back). [`ConfigError::NotFound`] if it is already gone.
    ///
    /// # Cancellation safety
    /// As for [`ConfigClient::publish`].
    pub async fn delete(&self, namespace: &str, key: &str) -> Result<ConfigRecord> {
        self.write(namespace, key, Change::Delete { comment: String::new() }).await
    }

    /// Publishes a canary candidate of `namespace/key` (numbered released + 1) that only
    /// clients whose labels match `options.selector` see, until it is promoted or abandoned.
    /// The key must exist; nothing else can be released while the canary lasts.
    ///
    /// # Cancellation safety
    /// As for [`ConfigClient::publish`].
    pub async fn publish_canary(
        &self,
        namespace: &str,
        key: &str,
        value: impl Into<String>,
        options: CanaryOptions,
    ) -> Result<ConfigRecord> {
        let change = Change::Canary {
            value: value.into(),
            format: options.format,
            selector: options.selector,
            comment: options.comment,
        };
        self.write(namespace, key, change).await
    }

    /// Releases the canary candidate to everyone, under the candidate's own version number
    /// (so the clients that had it see no change).
    ///
    /// # Cancellation safety
    /// As for [`ConfigClient::publish`].
    pub async fn promote_canary(&self, namespace: &str, key: &str) -> Result<ConfigRecord> {
        self.write(namespace, key, Change::Promote { comment: String::new() }).await
    }

    /// Drops the canary candidate: its clients go back to the released value, published again
    /// as the next version (a version number never goes down, even for them).
    ///
    /// # Cancellation safety
    /// As for [`ConfigClient::publish`].
    pub async fn abandon_canary(&self, namespace: &str, key: &str) -> Result<ConfigRecord> {
        self.write(namespace, key, Change::Abandon { comment: String::new() }).await
    }

    /// The canary candidate of `namespace/key`, if one is in progress.
    pub async fn canary(&self, namespace: &str, key: &str) -> Result<Option<ConfigRecord>> {
        check_namespace(namespace)?;
        check_key(key)?;
        let session = self.inner.session()?;
        let state = read_key(session.zk.client(), &self.inner.paths, namespace, key).await?;
        Ok(state.canary.map(|s| s.record))
    }

    /// Follows `namespace`: first every live key, then each change. See [`ConfigWatch`].
    pub fn watch(&self, namespace: &str) -> Result<ConfigWatch> {
        check_namespace(namespace)?;
        Ok(ConfigWatch::start(self.inner.clone(), namespace))
    }

    /// A mirror of every namespace into Redis through `target`; it runs when
    /// [`ConfigMirror::run`] is awaited.
    pub fn mirror<T: MirrorTarget>(&self, target: T, options: MirrorOptions) -> ConfigMirror<T> {
        ConfigMirror::new(self, target, options)
    }

    async fn write(&self, namespace: &str, key: &str, change: Change) -> Result<ConfigRecord> {
        check_namespace(namespace)?;
        check_key(key)?;
        let session = self.inner.session()?;
        let options = &self.inner.options;
        store::write(
            session.zk.client(),
            &self.inner.paths,
            namespace,
            key,
            &change,
            &options.author,
            options.history_limit,
        )
        .await
    }
}

fn check_options(options: &ConfigOptions) -> Result<()> {
    check_labels(&options.labels)?;
    ConfigPaths::new(&options.root)?;
    Ok(())
}

impl Inner {
    /// The current session, connected or not (requests wait for a reconnect, bounded).
    pub(crate) fn session(&self) -> Result<Session> {
        self.keeper.current().ok_or(ConfigError::Offline)
    }

    /// The current session if it is connected now.
    pub(crate) fn connected(&self) -> Option<Session> {
        self.keeper.current().filter(|s| s.is_connected())
    }

    pub(crate) fn snapshots_enabled(&self) -> bool {
        self.options.snapshot_dir.is_some()
    }

    pub(crate) fn with_view<T>(&self, namespace: &str, f: impl FnOnce(&mut NsView) -> T) -> T {
        let mut views = self.views.lock().unwrap_or_else(|p| p.into_inner());
        f(views.entry(namespace.to_string()).or_default())
    }

    /// Reads one key from ZooKeeper into the view. With snapshots, a namespace not yet read
    /// whole is read whole (a snapshot must hold the whole namespace).
    async fn read_key_live(&self, session: &Session, namespace: &str, key: &str) -> Result<()> {
        if self.snapshots_enabled() && !self.with_view(namespace, |v| v.complete) {
            return self.refresh_namespace(session, namespace).await.map(|_| ());
        }
        let state = read_key(session.zk.client(), &self.paths, namespace, key).await?;
        let seen = effective(
            state.released.as_ref().map(|s| &s.record),
            state.canary.as_ref().map(|s| &s.record),
            &self.options.labels,
        );
        self.with_view(namespace, |v| v.observe(key, seen));
        self.persist(namespace).await;
        Ok(())
    }

    /// Reads the whole namespace from ZooKeeper into the view (and the snapshot); returns the
    /// keys that could not be read.
    pub(crate) async fn refresh_namespace(&self, session: &Session, namespace: &str) -> Result<HashSet<String>> {
        let read = read_namespace(session.zk.client(), &self.paths, namespace).await?;
        self.with_view(namespace, |view| view.take_whole_read(&read, &self.options.labels));
        self.back_online(namespace);
        self.persist(namespace).await;
        Ok(read.unreadable.into_iter().collect())
    }

    /// After a live read attempt: passes its error on, or — if ZooKeeper was unreachable and
    /// snapshots are on — turns the view into a snapshot view.
    async fn settle(&self, namespace: &str, live: Result<()>) -> Result<()> {
        match live {
            Ok(()) => Ok(()),
            Err(e) if e.is_unreachable() && self.snapshots_enabled() => self.fall_back(namespace, &e),
            Err(e) => Err(e),
        }
    }

    /// Serves `namespace` from what this client saw last (in memory, else the snapshot file),
    /// marked stale; [`ConfigError::Unavailable`] if there is nothing.
    pub(crate) fn fall_back(&self, namespace: &str, cause: &ConfigError) -> Result<()> {
        let loaded = self.with_view(namespace, |view| {
            if view.complete || view.source.is_stale() {
                // What we read last is at least as new as the file.
                view.complete = false;
                view.source = Source::LocalSnapshot { taken_at_ms: view.refreshed_ms };
                true
            } else {
                false
            }
        });
        if !loaded {
            let Some(dir) = &self.options.snapshot_dir else {
                return Err(ConfigError::Unavailable { namespace: namespace.to_string() });
            };
            match snapshot::load(dir, namespace)? {
                Some(file) => self.with_view(namespace, |view| {
                    let mut from_file = NsView::from_snapshot(file);
                    // Keep anything newer this client saw of single keys meanwhile.
                    for (key, record) in std::mem::take(&mut view.entries) {
                        from_file.observe(&key, Some(&record));
                    }
                    *view = from_file;
                }),
                None => return Err(ConfigError::Unavailable { namespace: namespace.to_string() }),
            }
        }
        let first = self.warned.lock().unwrap_or_else(|p| p.into_inner()).insert(namespace.to_string());
        if first {
            let taken_at_ms = self.with_view(namespace, |v| v.refreshed_ms);
            tracing::warn!(namespace, taken_at_ms, cause = %cause, "serving config from the local snapshot (may be stale)");
        }
        Ok(())
    }

    fn back_online(&self, namespace: &str) {
        if self.warned.lock().unwrap_or_else(|p| p.into_inner()).remove(namespace) {
            tracing::info!(namespace, "config is served from ZooKeeper again");
        }
    }

    /// Writes the namespace's snapshot if it changed since the last one. Errors are logged:
    /// a snapshot that cannot be written must not fail the read.
    pub(crate) async fn persist(&self, namespace: &str) {
        let Some(dir) = self.options.snapshot_dir.clone() else { return };
        let _one_at_a_time = self.save_lock.lock().await;
        let taken = self.with_view(namespace, |view| {
            (view.complete && view.generation != view.saved).then(|| {
                (
                    view.generation,
                    SnapshotFile {
                        namespace: namespace.to_string(),
                        taken_at_ms: now_ms(),
                        labels: self.options.labels.clone(),
                        entries: view.entries.clone(),
                    },
                )
            })
        });
        let Some((generation, file)) = taken else { return };
        let result = tokio::task::spawn_blocking(move || snapshot::save(&dir, &file)).await;
        match result {
            Ok(Ok(())) => self.with_view(namespace, |view| view.saved = view.saved.max(generation)),
            Ok(Err(error)) => tracing::warn!(namespace, %error, "cannot write the config snapshot"),
            Err(error) => tracing::warn!(namespace, %error, "cannot write the config snapshot"),
        }
    }
}

//! The configuration center: namespaces of versioned keys in ZooKeeper, with history,
//! rollback, compare-and-set, watches that never go backwards, canary releases, a local
//! snapshot for when ZooKeeper is unreachable, and a Redis mirror for other languages.
//!
//! - [`ConfigClient`] is the entry point: `get`, `list`, `publish` (validated against its
//!   [`Format`], compare-and-set with `expect_version`), `history`, `rollback`, `delete`,
//!   `publish_canary` / `promote_canary` / `abandon_canary`, `watch`, `mirror`.
//! - [`ConfigWatch`]: a namespace's changes; per key, versions only go up, across reconnects
//!   and session expiry (everything is re-read; the pure [`emit::decide`] filters).
//! - [`ConfigMirror`]: keeps `zedis:config:<ns>` (hash key → value) in Redis through
//!   version-checked scripts, so it never goes backwards; announces changes on the channel of
//!   the same name. Run by the controller leader, or by `zedis config mirror`.
//!
//! Layout in ZooKeeper (see [`paths`]): `<root>/config/<ns>/<key>` holds the current
//! [`ConfigRecord`] as JSON, `<key>/history/v-<version>` the last `history_limit` versions,
//! `<key>/canary` a canary candidate. Versions start at 1 and rise by 1 with every change; a
//! delete is a version too, so a deleted and re-created key never reuses a number.
//!
//! ```no_run
//! # async fn demo() -> Result<(), zedis_recipes::config::ConfigError> {
//! use zedis_coord::ZkOptions;
//! use zedis_recipes::config::{ConfigClient, ConfigOptions, Format, PublishOptions};
//!
//! let options = ConfigOptions { snapshot_dir: Some("/var/lib/app/config".into()), ..ConfigOptions::default() };
//! let config = ConfigClient::connect(ZkOptions::new("127.0.0.1:2181"), options).await?;
//! let v = config
//!     .publish("app", "limits", r#"{"rps": 100}"#, PublishOptions { format: Format::Json, ..Default::default() })
//!     .await?;
//! println!("published version {}", v.version);
//! let mut watch = config.watch("app")?;
//! while let Some(event) = watch.next().await {
//!     println!("{} is now version {}", event.key, event.version());
//! }
//! # Ok(()) }
//! ```

pub mod canary;
pub mod client;
pub mod emit;
pub mod error;
pub mod format;
pub mod mirror;
pub mod mirror_plan;
pub mod mirror_script;
pub mod mirror_target;
pub mod options;
pub mod paths;
pub mod plan;
pub mod record;
pub mod session;
pub mod snapshot;
mod store;
pub mod value;
mod view;
pub mod watch;

pub use canary::{parse_labels, selector_matches};
pub use client::ConfigClient;
pub use error::{ConfigError, Result};
pub use format::{validate, Format};
pub use mirror::{ConfigMirror, MirrorOptions, MirrorStats};
pub use mirror_plan::{channel, meta_key, values_key, MetaRecord, MirrorWrite, Notification};
pub use mirror_script::{apply_writes, WriteOutcome};
pub use mirror_target::{query_with, MirrorTarget, TargetError};
pub use options::{CanaryOptions, ConfigOptions, PublishOptions, DEFAULT_HISTORY_LIMIT};
pub use paths::ConfigPaths;
pub use record::{CanaryInfo, CanaryState, ConfigRecord, MAX_VALUE_BYTES};
pub use snapshot::SnapshotFile;
pub use value::{ConfigValue, NamespaceView, Source};
pub use watch::{ConfigEvent, ConfigWatch, WatchStatus};

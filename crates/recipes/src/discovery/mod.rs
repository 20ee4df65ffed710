//! Service discovery on ZooKeeper, with a Redis mirror for clients in other languages.
//!
//! - [`Discovery`] is the entry point: it keeps a ZooKeeper session (and opens a new one when
//!   the old one expires, see [`SessionKeeper`]) and hands out the rest.
//! - [`Registration`]: one [`ServiceInstance`] as the ephemeral node
//!   `<root>/services/<service>/<id>`, re-created in every new session, updatable in place.
//! - [`ServiceCache`]: the live instances of one service, followed through a watch.
//! - [`Picker`]: pure choice of an instance (round-robin, random, weighted, sticky, consistent
//!   hash), with errors putting instances aside and a protect threshold.
//! - [`ServiceMirror`]: keeps the Redis hashes `zedis:services:<service>` equal to ZooKeeper
//!   and publishes every change on the channel of the same name.
//!
//! ```no_run
//! # async fn demo() -> Result<(), zedis_recipes::discovery::DiscoveryError> {
//! use zedis_coord::ZkOptions;
//! use zedis_recipes::discovery::{Discovery, DiscoveryOptions, Picker, PickerOptions, ServiceInstance};
//!
//! let discovery = Discovery::connect(ZkOptions::new("127.0.0.1:2181"), DiscoveryOptions::default()).await?;
//! let registration = discovery.register(ServiceInstance::new("api", "api-1", "10.0.0.7", 8080)).await?;
//! let cache = discovery.cache("api")?;
//! cache.ready().await;
//! let mut picker = Picker::new(PickerOptions::default());
//! let instances = cache.instances();
//! if let Some(instance) = picker.pick(&instances, None) {
//!     println!("calling {}", instance.endpoint());
//! }
//! registration.deregister().await?;
//! # Ok(()) }
//! ```

pub mod cache;
pub mod client;
pub mod error;
pub mod instance;
pub mod keeper;
pub mod mirror;
pub mod mirror_plan;
pub mod paths;
pub mod picker;
mod reader;
pub mod registration;
pub mod ring;

pub use cache::{ServiceCache, ServiceView};
pub use client::{Discovery, DiscoveryOptions};
pub use error::{DiscoveryError, Result};
pub use instance::{ServiceInstance, DEFAULT_WEIGHT, MAX_RECORD_BYTES};
pub use keeper::{Session, SessionKeeper};
pub use mirror::{MirrorOptions, MirrorStatus, ServiceMirror};
pub use mirror_plan::{MirrorPlan, SERVICES_KEY_PREFIX};
pub use paths::ServicePaths;
pub use picker::{Picker, PickerOptions, Strategy};
pub use registration::{Registration, RegistrationState};
pub use ring::HashRing;

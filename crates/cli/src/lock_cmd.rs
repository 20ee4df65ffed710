//! `zedis lock ...` (placeholder until the lock recipe lands).

use anyhow::{bail, Result};
use clap::Subcommand;

use crate::common::Global;

#[derive(Subcommand, Debug)]
pub enum LockCommand {
    /// Not available yet.
    List,
}

pub async fn run(_global: &Global, _cmd: LockCommand) -> Result<()> {
    bail!("'zedis lock' is not available yet")
}

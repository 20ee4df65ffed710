//! `zedis queue ...` (placeholder until the queue work lands).

use anyhow::{bail, Result};
use clap::Subcommand;

use crate::common::Global;

#[derive(Subcommand, Debug)]
pub enum QueueCommand {
    /// Not available yet.
    List,
}

pub async fn run(_global: &Global, _cmd: QueueCommand) -> Result<()> {
    bail!("'zedis queue' is not available yet")
}

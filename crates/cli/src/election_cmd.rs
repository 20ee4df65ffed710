//! `zedis election ...` (placeholder until the election recipe lands).

use anyhow::{bail, Result};
use clap::Subcommand;

use crate::common::Global;

#[derive(Subcommand, Debug)]
pub enum ElectionCommand {
    /// Not available yet.
    List,
}

pub async fn run(_global: &Global, _cmd: ElectionCommand) -> Result<()> {
    bail!("'zedis election' is not available yet")
}

//! `zedis config ...` (placeholder until the config work lands).

use anyhow::{bail, Result};
use clap::Subcommand;

use crate::common::Global;

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Not available yet.
    List,
}

pub async fn run(_global: &Global, _cmd: ConfigCommand) -> Result<()> {
    bail!("'zedis config' is not available yet")
}

//! `zedis service ...` (placeholder until the service recipe lands).

use anyhow::{bail, Result};
use clap::Subcommand;

use crate::common::Global;

#[derive(Subcommand, Debug)]
pub enum ServiceCommand {
    /// Not available yet.
    List,
}

pub async fn run(_global: &Global, _cmd: ServiceCommand) -> Result<()> {
    bail!("'zedis service' is not available yet")
}

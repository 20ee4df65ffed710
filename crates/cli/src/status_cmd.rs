use anyhow::Result;
use clap::Args;
use zedis_coord::{LeaderRecord, ObserverBoard, TopologyStore};
use zedis_topology::now_ms;

use crate::common::Global;
use crate::migrate_cmd;
use crate::status_view::{build, render};

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Reports older than this (by their writer's clock) are ignored for health.
const FRESH_MS: u64 = 5000;

pub async fn run(global: &Global, args: StatusArgs) -> Result<()> {
    let zk = global.connect().await?;
    let paths = global.paths()?;
    let topo = TopologyStore::new(zk.clone(), paths.clone()).read().await?;
    // The controller acting as leader now (not merely first in the election queue).
    let leader = LeaderRecord::read(&zk, &paths).await?.map(|r| r.id);
    let now = now_ms();
    let reports: Vec<_> = ObserverBoard::new(zk.clone(), paths.clone())
        .read_all()
        .await?
        .into_iter()
        .filter_map(|p| p.report)
        .filter(|r| now.saturating_sub(r.time_ms) <= FRESH_MS)
        .collect();
    let mut view = build(&topo.value, leader, &reports);
    view.migrations = migrate_cmd::views(&zk, &paths, &topo.value, false).await?;
    view.proxies = registrations(&zk, &paths.proxies()).await?;
    view.clients = registrations(&zk, &paths.clients()).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", render(&view));
    }
    Ok(())
}

/// The JSON records under a registration directory (records that do not parse are skipped).
async fn registrations(zk: &zedis_coord::Zk, dir: &str) -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for id in zk.children(dir).await? {
        if let Some((data, _)) = zk.get(&format!("{dir}/{id}")).await? {
            if let Ok(record) = serde_json::from_slice::<serde_json::Value>(&data) {
                out.push(record);
            }
        }
    }
    Ok(out)
}

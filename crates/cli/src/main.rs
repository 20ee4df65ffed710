//! `zedis`: one binary for every role and tool. Thin: parsing, output, exit codes; the work
//! happens in the library crates.

mod cluster_cmd;
mod common;
mod config_cmd;
mod controller_cmd;
mod election_cmd;
mod lock_cmd;
mod migrate_cmd;
mod migration_view;
mod proxy_cmd;
mod queue_cmd;
mod service_cmd;
mod status_cmd;
mod status_view;
mod up_cmd;

use clap::{Parser, Subcommand};

use crate::common::Global;

#[derive(Parser, Debug)]
#[command(name = "zedis", version, about = "Redis with ZooKeeper: a highly available, sharded Redis service", long_about = None)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a controller: probes every server, and while elected leader, sets up replication
    /// and fails over automatically.
    Controller(controller_cmd::ControllerArgs),
    /// Run a proxy: any Redis client connects to it and is routed by hash slot to the right group.
    Proxy(proxy_cmd::ProxyArgs),
    /// Create and change a cluster's topology.
    #[command(subcommand)]
    Cluster(cluster_cmd::ClusterCommand),
    /// Show the cluster: epoch, groups, masters, replicas, slots and server health.
    Status(status_cmd::StatusArgs),
    /// Start a local sandbox: ZooKeeper, Redis groups and controllers, until Ctrl-C.
    Up(up_cmd::UpArgs),
    /// Distributed locks with fencing tokens: run a command while holding one, list them.
    #[command(subcommand)]
    Lock(lock_cmd::LockCommand),
    /// Leader election: run a command while leader, show the leader.
    #[command(subcommand)]
    Election(election_cmd::ElectionCommand),
    /// Service discovery: register an instance, list and watch a service's instances.
    #[command(subcommand)]
    Service(service_cmd::ServiceCommand),
    /// Configuration center: versioned values by namespace, history, rollback, watch.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Queues on Redis Streams, for operators: push, pop, ack, stats.
    #[command(subcommand)]
    Queue(queue_cmd::QueueCommand),
}

/// Servers and supervisors keep Rust's default of ignoring SIGPIPE (a vanished peer is an
/// error to handle, and a lock or leadership must be released in order). Tools that print
/// restore the Unix default, so `zedis status | head -1` ends quietly instead of panicking on
/// a closed stdout.
fn restore_sigpipe(command: &Command) {
    if matches!(
        command,
        Command::Controller(_)
            | Command::Proxy(_)
            | Command::Up(_)
            | Command::Lock(lock_cmd::LockCommand::Run(_))
            | Command::Election(election_cmd::ElectionCommand::Run(_))
            | Command::Service(service_cmd::ServiceCommand::Register(_))
    ) {
        return;
    }
    // SAFETY: setting a signal's disposition before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() {
    let cli = Cli::parse();
    restore_sigpipe(&cli.command);
    common::init_logging(&cli.global);
    let result = match cli.command {
        Command::Up(args) => up_cmd::run(&cli.global, args),
        command => {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("zedis: cannot start the async runtime: {e}");
                    std::process::exit(1);
                }
            };
            runtime.block_on(async {
                match command {
                    Command::Controller(args) => controller_cmd::run(&cli.global, args).await,
                    Command::Proxy(args) => proxy_cmd::run(&cli.global, args).await,
                    Command::Cluster(cmd) => cluster_cmd::run(&cli.global, cmd).await,
                    Command::Status(args) => status_cmd::run(&cli.global, args).await,
                    Command::Lock(cmd) => lock_cmd::run(&cli.global, cmd).await,
                    Command::Election(cmd) => election_cmd::run(&cli.global, cmd).await,
                    Command::Service(cmd) => service_cmd::run(&cli.global, cmd).await,
                    Command::Config(cmd) => config_cmd::run(&cli.global, cmd).await,
                    Command::Queue(cmd) => queue_cmd::run(&cli.global, cmd).await,
                    Command::Up(_) => unreachable!("handled above"),
                }
            })
        }
    };
    if let Err(e) = result {
        // One line, the whole cause chain.
        eprintln!("zedis: {}", format!("{e:#}").replace('\n', " "));
        std::process::exit(1);
    }
}

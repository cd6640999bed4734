//! `prison-service`: see the library docs. Reads `HUB_*` settings (flags
//! override), binds, and runs until SIGINT or SIGTERM.

use clap::Parser;
use hub_runtime::{config::CommonArgs, server, shutdown, telemetry};

#[derive(Parser)]
#[command(
    name = "prison-service",
    version,
    about = "Prison and CARAT commands for the harm-reduction hub"
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let cli = Cli::parse();
    let listener = server::bind(cli.common.listen_or(prison_service::DEFAULT_LISTEN)).await?;
    prison_service::run(cli.common, listener, shutdown::signal_received()).await?;
    Ok(())
}

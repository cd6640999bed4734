//! `pickup-projection`: see the library docs. Reads `HUB_*` settings (flags
//! override), binds, and runs until SIGINT or SIGTERM.

use clap::Parser;
use hub_runtime::{server, shutdown, telemetry};

#[derive(Parser)]
#[command(
    name = "pickup-projection",
    version,
    about = "Builds and serves the prison-gate pick-up list"
)]
struct Cli {
    #[command(flatten)]
    config: pickup_projection::Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let cli = Cli::parse();
    let listener = server::bind(
        cli.config
            .common
            .listen_or(pickup_projection::DEFAULT_LISTEN),
    )
    .await?;
    pickup_projection::run(cli.config, listener, shutdown::signal_received()).await?;
    Ok(())
}

//! `pickup-projection`: see the library docs.

fn main() -> std::process::ExitCode {
    hub_runtime::agency::service_main(
        pickup_projection::NAME,
        "Builds and serves the prison-gate pick-up list",
        pickup_projection::DEFAULT_LISTEN,
        |config: hub_projection::Config, listener| {
            pickup_projection::run(config, listener, hub_runtime::shutdown::signal_received())
        },
    )
}

//! `custody-service`: see the library docs.

fn main() -> std::process::ExitCode {
    hub_runtime::agency::service_main(
        custody_service::NAME,
        "Police custody suite commands for the harm-reduction hub",
        custody_service::DEFAULT_LISTEN,
        |args: hub_runtime::config::CommonArgs, listener| {
            custody_service::run(args, listener, hub_runtime::shutdown::signal_received())
        },
    )
}

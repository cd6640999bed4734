//! `ambulance-service`: see the library docs.

fn main() -> std::process::ExitCode {
    hub_runtime::agency::service_main(
        ambulance_service::NAME,
        "Ambulance trust commands for the harm-reduction hub",
        ambulance_service::DEFAULT_LISTEN,
        |args: hub_runtime::config::CommonArgs, listener| {
            ambulance_service::run(args, listener, hub_runtime::shutdown::signal_received())
        },
    )
}

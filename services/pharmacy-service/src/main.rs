//! `pharmacy-service`: see the library docs.

fn main() -> std::process::ExitCode {
    hub_runtime::agency::service_main(
        pharmacy_service::NAME,
        "Community pharmacy commands for the harm-reduction hub",
        pharmacy_service::DEFAULT_LISTEN,
        |args: hub_runtime::config::CommonArgs, listener| {
            pharmacy_service::run(args, listener, hub_runtime::shutdown::signal_received())
        },
    )
}

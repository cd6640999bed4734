//! `treatment-service`: see the library docs.

fn main() -> std::process::ExitCode {
    hub_runtime::agency::service_main(
        treatment_service::NAME,
        "Drug treatment and DIP commands for the harm-reduction hub",
        treatment_service::DEFAULT_LISTEN,
        |args: hub_runtime::config::CommonArgs, listener| {
            treatment_service::run(args, listener, hub_runtime::shutdown::signal_received())
        },
    )
}

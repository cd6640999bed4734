//! `prison-service`: see the library docs.

fn main() -> std::process::ExitCode {
    hub_runtime::agency::service_main(
        prison_service::NAME,
        "Prison and CARAT commands for the harm-reduction hub",
        prison_service::DEFAULT_LISTEN,
        |args: hub_runtime::config::CommonArgs, listener| {
            prison_service::run(args, listener, hub_runtime::shutdown::signal_received())
        },
    )
}

//! `identity-service`: see the library docs.

fn main() -> std::process::ExitCode {
    hub_runtime::agency::service_main(
        identity_service::NAME,
        "Data stewards' link and unlink decisions for the harm-reduction hub",
        identity_service::DEFAULT_LISTEN,
        |args: hub_runtime::config::CommonArgs, listener| {
            identity_service::run(args, listener, hub_runtime::shutdown::signal_received())
        },
    )
}

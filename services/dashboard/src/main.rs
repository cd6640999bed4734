//! `dashboard`: see the library docs.

fn main() -> std::process::ExitCode {
    hub_runtime::agency::service_main(
        dashboard::NAME,
        "Partnership dashboard for the harm-reduction hub",
        dashboard::DEFAULT_LISTEN,
        |config: dashboard::Config, listener| {
            dashboard::run(config, listener, hub_runtime::shutdown::signal_received())
        },
    )
}

//! Screenshots of a running dashboard, as a signed-in user sees it: how
//! the README's pictures are made (`make run`, then this).
//!
//! ```sh
//! cargo run --release -p hub-testkit --example screenshot -- \
//!     http://127.0.0.1:8080 dev-carat-worker-token /partnerships/bradford/pickups docs/screenshots/pickups.png
//! ```

use anyhow::{bail, Context, Result};
use hub_testkit::browser::Browser;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, token, path, out] = args.as_slice() else {
        bail!("usage: screenshot <dashboard-url> <token> <path> <out.png>");
    };
    let mut browser = Browser::start(1280, 800)?;
    browser.sign_in(base, token)?;
    browser.goto(&format!("{base}{path}"))?;
    let shot = browser.screenshot("readme")?;
    std::fs::copy(&shot, out).with_context(|| format!("writing {out}"))?;
    println!("{out}");
    Ok(())
}

//! Screenshots of a running dashboard, as a signed-in user sees it: how
//! the README's pictures are made (`make run`, then this).
//!
//! ```sh
//! cargo run --release -p hub-testkit --example screenshot -- \
//!     http://127.0.0.1:8080 dev-carat-worker-token /partnerships/bradford/pickups docs/screenshots/pickups.png
//! ```
//!
//! A fifth argument, a CSS selector, takes only that part of the page
//! (`'#chart-england'`: one chart and its table), or `window` what the
//! window shows from the top of the page.

use anyhow::{bail, Context, Result};
use hub_testkit::browser::Browser;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (base, token, path, out, selector) = match args.as_slice() {
        [base, token, path, out] => (base, token, path, out, None),
        [base, token, path, out, selector] => (base, token, path, out, Some(selector)),
        _ => bail!("usage: screenshot <dashboard-url> <token> <path> <out.png> [css-selector]"),
    };
    let mut browser = Browser::start(1280, 800)?;
    browser.sign_in(base, token)?;
    browser.goto(&format!("{base}{path}"))?;
    let shot = match selector {
        Some(w) if w == "window" => browser.screenshot_window("readme")?,
        Some(selector) => browser.screenshot_of("readme", selector)?,
        None => browser.screenshot("readme")?,
    };
    std::fs::copy(&shot, out).with_context(|| format!("writing {out}"))?;
    println!("{out}");
    Ok(())
}

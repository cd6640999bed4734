//! A real browser for tests: Debian's `chromium`, headless, driven over the
//! Chrome DevTools Protocol (one WebSocket, JSON messages).
//!
//! Only what a test of the dashboard needs: open a page, type and press
//! keys as a person would, read what the page shows, wait for it to
//! change, clear cookies (a new person at the same machine), and save a
//! screenshot as a test artefact. A few calls over `tungstenite` instead of
//! a browser-automation framework: nothing else to install or download.
//!
//! Chromium runs with a fresh profile in a temporary folder and the flags
//! that keep it off the network (this machine's network is closed, and a
//! test must not depend on Google's hosts anyway).

use std::{
    io::{BufRead, BufReader},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use serde_json::{json, Value};
use tungstenite::{stream::MaybeTlsStream, Message, WebSocket};

/// Where Chromium is: `HUB_CHROMIUM`, else Debian's `/usr/bin/chromium`.
pub fn chromium_binary() -> Result<PathBuf> {
    let path = std::env::var_os("HUB_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !path.exists() {
        bail!(
            "{} not found: install Debian's chromium (`make test` does) or set HUB_CHROMIUM",
            path.display()
        );
    }
    Ok(path)
}

/// Where tests leave screenshots: `<target dir>/browser-artifacts/`.
pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"));
    target.join("browser-artifacts")
}

/// A headless Chromium with one tab.
pub struct Browser {
    child: Child,
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Starts Chromium with a `width`×`height` window and opens a blank tab.
    pub fn start(width: u32, height: u32) -> Result<Self> {
        let profile = tempfile::Builder::new().prefix("hub-chromium-").tempdir()?;
        let mut child = Command::new(chromium_binary()?)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
                &format!("--window-size={width},{height}"),
                &format!("--user-data-dir={}", profile.path().display()),
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting chromium")?;
        // Chromium prints where its DevTools endpoint listens.
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                bail!("chromium did not open its DevTools endpoint within 30 s");
            }
        };
        let (socket, _) = tungstenite::connect(&url).context("connecting to chromium")?;
        let mut browser = Self {
            child,
            socket,
            session: String::new(),
            next_id: 0,
            _profile: profile,
        };
        let target = browser.call_browser("Target.createTarget", json!({"url": "about:blank"}))?;
        let target_id = target["targetId"].as_str().context("targetId")?.to_string();
        let attached = browser.call_browser(
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        )?;
        browser.session = attached["sessionId"]
            .as_str()
            .context("sessionId")?
            .to_string();
        browser.call("Page.enable", json!({}))?;
        browser.call("Runtime.enable", json!({}))?;
        browser.call("Network.enable", json!({}))?;
        Ok(browser)
    }

    fn send(&mut self, method: &str, params: Value, session: Option<String>) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            message["sessionId"] = Value::String(s);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .with_context(|| format!("sending {method}"))?;
        loop {
            let reply = match self
                .socket
                .read()
                .with_context(|| format!("awaiting {method}"))?
            {
                Message::Text(t) => serde_json::from_str::<Value>(t.as_str())?,
                _ => continue,
            };
            if reply["id"].as_u64() != Some(id) {
                continue; // an event, or another reply
            }
            if let Some(e) = reply.get("error") {
                bail!("{method}: {e}");
            }
            return Ok(reply["result"].clone());
        }
    }

    fn call_browser(&mut self, method: &str, params: Value) -> Result<Value> {
        self.send(method, params, None)
    }

    /// A DevTools command on the tab.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        let session = self.session.clone();
        self.send(method, params, Some(session))
    }

    /// The value of a JavaScript expression in the page (promises awaited).
    pub fn eval(&mut self, expression: &str) -> Result<Value> {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        )?;
        if let Some(e) = r.get("exceptionDetails") {
            bail!("{expression}: {e}");
        }
        Ok(r["result"]["value"].clone())
    }

    /// Waits (up to `timeout`) until `expression` is truthy in the page.
    pub fn wait_for(&mut self, expression: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            // A navigation in progress destroys the context: try again.
            if let Ok(v) = self.eval(&format!("!!({expression})")) {
                if v == Value::Bool(true) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                let text = self.text().unwrap_or_default();
                bail!("waited {timeout:?} for `{expression}`; the page shows:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Opens `url` and waits until it has loaded.
    pub fn goto(&mut self, url: &str) -> Result<()> {
        let r = self.call("Page.navigate", json!({"url": url}))?;
        if let Some(e) = r.get("errorText") {
            bail!("navigating to {url}: {e}");
        }
        self.wait_for(
            &format!(
                "location.href === {} && document.readyState === 'complete'",
                json!(url)
            ),
            Duration::from_secs(15),
        )
        .or_else(|_| {
            // Redirected: wait for whatever page it landed on.
            self.wait_for(
                "document.readyState === 'complete'",
                Duration::from_secs(15),
            )
        })
    }

    /// Everything the page shows as text.
    pub fn text(&mut self) -> Result<String> {
        Ok(self
            .eval("document.body ? document.body.innerText : ''")?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// The page's path and query, e.g. `/partnerships/bradford`.
    pub fn path(&mut self) -> Result<String> {
        Ok(self
            .eval("location.pathname + location.search")?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// Types `text` into whatever has the keyboard focus.
    pub fn type_text(&mut self, text: &str) -> Result<()> {
        self.call("Input.insertText", json!({"text": text}))?;
        Ok(())
    }

    /// Presses and releases a key: `Enter`, `Tab`.
    pub fn press(&mut self, key: &str) -> Result<()> {
        let (code, text) = match key {
            "Enter" => (13, "\r"),
            "Tab" => (9, ""),
            other => return Err(anyhow!("press: no key code for {other}")),
        };
        let mut down =
            json!({"type": "keyDown", "key": key, "code": key, "windowsVirtualKeyCode": code});
        if !text.is_empty() {
            down["text"] = Value::String(text.into());
        }
        self.call("Input.dispatchKeyEvent", down)?;
        self.call(
            "Input.dispatchKeyEvent",
            json!({"type": "keyUp", "key": key, "code": key, "windowsVirtualKeyCode": code}),
        )?;
        Ok(())
    }

    /// Signs in to the dashboard at `base` through its form, with the
    /// keyboard only: Tab to the token field, type, Enter. Waits for the
    /// page the dashboard sends the person to.
    pub fn sign_in(&mut self, base: &str, token: &str) -> Result<()> {
        self.clear_cookies()?;
        self.goto(&format!("{base}/login"))?;
        for _ in 0..6 {
            if self.eval("document.activeElement && document.activeElement.id === 'token'")?
                == Value::Bool(true)
            {
                break;
            }
            self.press("Tab")?;
        }
        if self.eval("document.activeElement.id")? != "token" {
            bail!("the token field cannot be reached with Tab");
        }
        self.type_text(token)?;
        self.press("Enter")?;
        self.wait_for(
            "location.pathname !== '/login' && document.readyState === 'complete'",
            Duration::from_secs(15),
        )
    }

    /// Forgets every cookie: the next person at the same browser.
    pub fn clear_cookies(&mut self) -> Result<()> {
        self.call("Network.clearBrowserCookies", json!({}))?;
        Ok(())
    }

    /// The page's cookies as the browser holds them.
    pub fn cookies(&mut self) -> Result<Vec<Value>> {
        Ok(self.call("Network.getCookies", json!({}))?["cookies"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Saves the whole page as a PNG under [`artifacts_dir`]; returns the path.
    pub fn screenshot(&mut self, name: &str) -> Result<PathBuf> {
        self.capture(
            name,
            json!({"format": "png", "captureBeyondViewport": true}),
        )
    }

    /// Saves what the window shows, from the top of the page.
    pub fn screenshot_window(&mut self, name: &str) -> Result<PathBuf> {
        self.capture(name, json!({"format": "png"}))
    }

    /// Saves the first element matching the CSS `selector` (a chart, a
    /// table) as a PNG under [`artifacts_dir`]; returns the path.
    pub fn screenshot_of(&mut self, name: &str, selector: &str) -> Result<PathBuf> {
        let selector = serde_json::to_string(selector)?;
        let rect = self.eval(&format!(
            "(() => {{ const e = document.querySelector({selector}); if (!e) return null; \
              const r = e.getBoundingClientRect(); \
              return [r.left + scrollX, r.top + scrollY, r.width, r.height]; }})()"
        ))?;
        let [x, y, width, height] = [0, 1, 2, 3].map(|i| rect[i].as_f64());
        let (Some(x), Some(y), Some(width), Some(height)) = (x, y, width, height) else {
            bail!("nothing on the page matches {selector}");
        };
        self.capture(
            name,
            json!({"format": "png", "captureBeyondViewport": true,
                   "clip": {"x": x, "y": y, "width": width, "height": height, "scale": 1}}),
        )
    }

    fn capture(&mut self, name: &str, params: Value) -> Result<PathBuf> {
        let shot = self.call("Page.captureScreenshot", params)?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().context("screenshot data")?)?;
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }
}

/// Whether `path` holds a PNG image.
pub fn is_png(path: &Path) -> bool {
    std::fs::read(path)
        .map(|b| b.starts_with(b"\x89PNG\r\n\x1a\n"))
        .unwrap_or(false)
}

//! Test servers for the hub's tests: a real `nats-server` with JetStream on
//! a free port and its own store directory, and the hub's own binaries as
//! child processes on free ports. Everything is killed and removed on drop.
//! No fixed ports, no fixed sleeps: each waits for its readiness signal.
//!
//! # Layout
//! - [`NatsServer`]: start, kill, restart on the same port and store.
//! - [`NatsCluster`]: three of them clustered with
//!   `deploy/nats/cluster/node.conf`, as in production.
//! - [`HubProcess`]: a hub binary started with `HUB_LISTEN=127.0.0.1:0`,
//!   ready once it prints `<name> listening on <addr>`.
//! - [`binary`]: where cargo put a workspace binary.
//! - [`jwt`]: an identity provider's keys and tokens, made at test time.
//! - [`tls`]: a throwaway CA and certificates, made at test time.

pub mod browser;
pub mod jwt;
pub mod tls;

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context, Result};

/// How long a server may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// A hub secret at `path` (32 random bytes, mode 0600), written unless one
/// is there: services never create their own (contract section 1).
pub fn ensure_secret(path: &Path) -> Result<()> {
    use std::{io::Read, io::Write, os::unix::fs::OpenOptionsExt};
    if path.exists() {
        return Ok(());
    }
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut f) => f
            .write_all(&bytes)
            .with_context(|| format!("writing {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

/// The nats-server to use: `$HUB_NATS_SERVER`, else the project's pinned
/// one in `.venv/bin` (installed by `make test`), else `nats-server` on PATH.
pub fn nats_server_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("HUB_NATS_SERVER") {
        return PathBuf::from(p);
    }
    let pinned = workspace_root().join(".venv/bin/nats-server");
    if pinned.exists() {
        return pinned;
    }
    PathBuf::from("nats-server")
}

/// A running `nats-server -js` on loopback.
pub struct NatsServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    config: Option<PathBuf>,
    env: Vec<(String, String)>,
    /// The variable through which the configuration file takes its store
    /// directory (nats-server refuses `--store_dir` as well), if it does.
    store_dir_var: Option<String>,
}

impl NatsServer {
    /// Starts a server on a free port with a fresh store directory.
    pub fn start() -> Result<Self> {
        Self::start_with(None, &[])
    }

    /// Starts a server with a configuration file (`-c`) and environment
    /// variables for it (such as passwords the file refers to).
    pub fn start_with(config: Option<&Path>, env: &[(String, String)]) -> Result<Self> {
        Self::start_configured(config, env, None)
    }

    fn start_configured(
        config: Option<&Path>,
        env: &[(String, String)],
        store_dir_var: Option<&str>,
    ) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("hub-nats-").tempdir()?;
        let mut server = Self {
            child: None,
            dir,
            port: 0,
            config: config.map(Path::to_path_buf),
            env: env.to_vec(),
            store_dir_var: store_dir_var.map(str::to_string),
        };
        server.launch(None)?;
        Ok(server)
    }

    fn launch(&mut self, port: Option<u16>) -> Result<()> {
        let ports_dir = self.dir.path().join("ports");
        let _ = std::fs::remove_dir_all(&ports_dir);
        std::fs::create_dir_all(&ports_dir)?;
        let port_arg = port.map_or("-1".to_string(), |p| p.to_string());
        let bin = nats_server_binary();
        let mut command = Command::new(&bin);
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        command
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(["-js", "-a", "127.0.0.1", "-p", &port_arg]);
        match &self.store_dir_var {
            Some(var) => command.env(var, self.store_dir()),
            None => command.arg("--store_dir").arg(self.store_dir()),
        };
        let child = command
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(
                self.dir.path().join("server.log"),
            )?))
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (run `make test`, which installs it)",
                    bin.display()
                )
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        // The server writes its ports file once it listens.
        loop {
            if let Some(port) = read_ports_file(&ports_dir)? {
                self.port = port;
                break;
            }
            if let Some(status) = self.child.as_mut().expect("just set").try_wait()? {
                bail!("nats-server exited with {status}: {}", self.log());
            }
            if Instant::now() > deadline {
                bail!(
                    "nats-server not ready after {READY_TIMEOUT:?}: {}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // And is ready for clients once it accepts a connection.
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                bail!("nats-server does not accept connections: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Where JetStream keeps its files.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("jetstream")
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same port with the same store.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.launch(Some(self.port))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `n` different free TCP ports on loopback (free when asked; the caller
/// binds them soon). All are held until all are chosen: asked one at a
/// time, the system may give the same port twice.
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    let held = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// The NATS users of deploy/nats/accounts.conf with passwords made for
/// one test, and, when asked, a throwaway CA for NATS's TLS.
pub struct NatsAccounts {
    run: String,
    pub tls: Option<tls::TestCa>,
}

impl NatsAccounts {
    /// Every user of deploy/nats/accounts.conf.
    pub const USERS: [&'static str; 11] = [
        "custody-service",
        "prison-service",
        "pharmacy-service",
        "treatment-service",
        "ambulance-service",
        "identity-service",
        "key-service",
        "pickup-projection",
        "training-projection",
        "activity-projection",
        "hub-operator",
    ];

    /// Passwords for this test; a CA under `tls_dir` when given.
    pub fn new(tls_dir: Option<&Path>) -> Result<Self> {
        use rand::Rng;
        let run: String = rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(16)
            .map(char::from)
            .collect();
        Ok(Self {
            run,
            tls: tls_dir.map(tls::TestCa::create).transpose()?,
        })
    }

    pub fn password(&self, user: &str) -> String {
        format!("pw-{user}-{}", self.run)
    }

    /// nats-server's environment: every user's password (and the TLS files).
    pub fn server_env(&self) -> Vec<(String, String)> {
        let mut env: Vec<_> = Self::USERS
            .iter()
            .map(|u| {
                (
                    format!("HUB_NATS_PASS_{}", u.to_uppercase().replace('-', "_")),
                    self.password(u),
                )
            })
            .collect();
        env.extend(self.tls.iter().flat_map(tls::TestCa::nats_server_env));
        env
    }

    /// A hub process's settings to sign in as `user` (and to use TLS).
    pub fn client_env(&self, user: &str) -> Vec<(String, String)> {
        let mut env = vec![
            ("HUB_NATS_USER".to_string(), user.to_string()),
            ("HUB_NATS_PASSWORD".into(), self.password(user)),
        ];
        env.extend(self.tls.iter().flat_map(tls::TestCa::nats_client_env));
        env
    }
}

/// A three-node JetStream cluster on loopback, each server started from
/// the production node configuration (`deploy/nats/cluster/node.conf`)
/// with its own store directory and free ports.
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
    /// Its users and TLS, as node.conf requires.
    pub accounts: NatsAccounts,
    _tls_dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts the three servers; tries again (up to three times) when one
    /// cannot start, as when another process took a route port between
    /// its choice and the server binding it.
    pub fn start() -> Result<Self> {
        let mut attempt = 1;
        loop {
            match Self::start_once() {
                Ok(cluster) => return Ok(cluster),
                Err(e) if attempt < 3 => {
                    eprintln!("the NATS cluster did not start ({e:#}); trying again");
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn start_once() -> Result<Self> {
        let tls_dir = tempfile::Builder::new().prefix("hub-nats-tls-").tempdir()?;
        let accounts = NatsAccounts::new(Some(tls_dir.path()))?;
        let config = workspace_root().join("deploy/nats/cluster/node.conf");
        let route_ports = free_ports(3)?;
        let routes: Vec<String> = route_ports
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect();
        let mut nodes = Vec::new();
        for (i, route_port) in route_ports.iter().enumerate() {
            let mut env = vec![
                ("HUB_NODE_NAME".to_string(), format!("hub-{}", i + 1)),
                ("HUB_NODE_HOST".into(), "127.0.0.1".into()),
                // The command line's -p takes precedence; the file still
                // needs the variable it names.
                ("HUB_NODE_PORT".into(), "-1".into()),
                ("HUB_NODE_CLUSTER_PORT".into(), route_port.to_string()),
            ];
            for (r, route) in routes.iter().enumerate() {
                env.push((format!("HUB_ROUTE_{}", r + 1), route.clone()));
            }
            env.extend(accounts.server_env());
            nodes.push(NatsServer::start_configured(
                Some(&config),
                &env,
                Some("HUB_NODE_STORE_DIR"),
            )?);
        }
        Ok(Self {
            nodes,
            accounts,
            _tls_dir: tls_dir,
        })
    }

    /// A hub process's settings to sign in as `user`, over TLS.
    pub fn client_env(&self, user: &str) -> Vec<(String, String)> {
        self.accounts.client_env(user)
    }

    /// Every node's URL, comma-separated (as `HUB_NATS_URL` takes them).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node called `name` (`hub-1` … `hub-3`).
    pub fn node(&mut self, name: &str) -> Option<&mut NatsServer> {
        let i: usize = name.strip_prefix("hub-")?.parse().ok()?;
        self.nodes.get_mut(i.checked_sub(1)?)
    }
}

fn read_ports_file(dir: &Path) -> Result<Option<u16>> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "ports") {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            let url = json["nats"][0]
                .as_str()
                .ok_or_else(|| anyhow!("ports file without nats: {text}"))?;
            let port = url.rsplit(':').next().and_then(|p| p.parse().ok());
            return Ok(port);
        }
    }
    Ok(None)
}

/// Where cargo put the workspace binary `name`: beside the running
/// program (a binary such as hub-bench), or next to a test's own `deps/`
/// folder (same profile).
pub fn binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let here = exe
        .parent()
        .ok_or_else(|| anyhow!("unexpected binary location {}", exe.display()))?;
    if here.join(name).exists() {
        return Ok(here.join(name));
    }
    let profile_dir = here
        .parent()
        .ok_or_else(|| anyhow!("unexpected test binary location {}", exe.display()))?;
    let path = profile_dir.join(name);
    if !path.exists() {
        bail!(
            "{} not built: run `cargo build --release --workspace` first (make test does)",
            path.display()
        );
    }
    Ok(path)
}

/// One of the hub's binaries, running.
pub struct HubProcess {
    name: String,
    child: Option<Child>,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    env: Vec<(String, String)>,
    stderr_log: PathBuf,
}

impl HubProcess {
    /// Starts `name` with `env` (plus `HUB_LISTEN=127.0.0.1:0` unless `env`
    /// sets it) and waits for its ready line. Its log goes to `stderr_log`.
    pub fn start(name: &str, env: &[(String, String)], stderr_log: &Path) -> Result<Self> {
        let mut p = Self {
            name: name.to_string(),
            child: None,
            addr: "127.0.0.1:0".parse()?,
            metrics_addr: None,
            env: env.to_vec(),
            stderr_log: stderr_log.to_path_buf(),
        };
        p.launch()?;
        Ok(p)
    }

    fn launch(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_log)?;
        let mut child = Command::new(binary(&self.name)?)
            .env("HUB_LISTEN", "127.0.0.1:0")
            .env("HUB_METRICS_LISTEN", "127.0.0.1:0")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(workspace_root())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        let ready = format!("{} listening on ", self.name);
        let metrics = format!("{} metrics on ", self.name);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix(&ready) {
                    let _ = tx.send((true, addr.trim().to_string()));
                } else if let Some(addr) = line.strip_prefix(&metrics) {
                    let _ = tx.send((false, addr.trim().to_string()));
                }
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok((true, addr)) => {
                    self.addr = addr.parse()?;
                    return Ok(());
                }
                Ok((false, addr)) => self.metrics_addr = Some(addr.parse()?),
                Err(_) => {
                    let exited = self.child.as_mut().expect("just set").try_wait()?;
                    if exited.is_some() || Instant::now() > deadline {
                        let log = std::fs::read_to_string(&self.stderr_log).unwrap_or_default();
                        self.kill();
                        bail!(
                            "{} did not become ready ({exited:?}); its log:\n{log}",
                            self.name
                        )
                    }
                }
            }
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The binary's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where it serves Prometheus metrics, if it does.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// `GET /metrics`, the body as text.
    pub fn scrape_metrics(&self) -> Result<String> {
        let addr = self
            .metrics_addr
            .ok_or_else(|| anyhow!("{} serves no metrics", self.name))?;
        let response = http(addr, "GET", "/metrics", &[], None)?;
        if response.status != 200 {
            bail!("GET /metrics: {}", response.status);
        }
        Ok(response.body)
    }

    /// `http://addr`, for a tonic client.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let mut c = self
            .child
            .take()
            .ok_or_else(|| anyhow!("{} is not running", self.name))?;
        Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()?;
        Ok(c.wait()?)
    }

    /// Starts again with the same settings (a new port).
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.launch()
    }

    /// Everything it logged so far.
    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An HTTP response, as tests need it.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header lines, as sent.
    pub headers: Vec<String>,
    pub body: String,
}

impl HttpResponse {
    /// The value of the first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// One HTTP/1.1 request with `Connection: close`, on plain TCP.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<HttpResponse> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        request.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    request.push_str("\r\n");
    request.push_str(body.unwrap_or_default());
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("not HTTP: {text}"))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("no status line: {head}"))?;
    let headers: Vec<String> = lines.map(str::to_string).collect();
    let chunked = headers.iter().any(|h| {
        h.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

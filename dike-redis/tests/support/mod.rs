//! Test harness: a real `redis-server` on a free loopback port, no persistence, killed when
//! dropped and when the test process dies (PR_SET_PDEATHSIG), with fault helpers.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use dike::time::{Timer, TokioTimer};

/// Rate tests measure time: one at a time in a test binary.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn on_path(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `redis-server` and `redis-cli` from PATH, installed with apt-get when absent and running as
/// root; otherwise a one-line failure (never a silent skip).
pub fn ensure_redis() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if on_path("redis-server") && on_path("redis-cli") {
            return;
        }
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if root && on_path("apt-get") {
            let ok = Command::new("sh")
                .args([
                    "-c",
                    "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null",
                ])
                .status()
                .is_ok_and(|s| s.success());
            if ok && on_path("redis-server") {
                return;
            }
        }
        panic!("redis-server not found: install the Debian package redis-server (apt-get install -y redis-server) and run again");
    });
}

/// A free loopback port; with `cluster`, below 55000 and with port + 10000 free too.
pub fn free_port(cluster: bool) -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if !cluster {
            return port;
        }
        if port < 55000 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

pub struct Node {
    pub port: u16,
    dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl Node {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with extra `redis-server` arguments (e.g. `--requirepass`).
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_on(free_port(false), extra)
    }

    pub fn start_on(port: u16, extra: &[&str]) -> Self {
        ensure_redis();
        let dir = std::env::temp_dir().join(format!("dike-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self {
            port,
            dir,
            args: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        server.spawn();
        server
    }

    pub fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--enable-debug-command", "local", "--logfile", "redis.log"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; the server dies with the thread that spawned it
        // (the test), so a killed test run leaves no server behind.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        self.child = Some(cmd.spawn().expect("spawn redis-server"));
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "redis-server on port {} did not answer PING within 10 s",
            self.port
        );
    }

    fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        if self.args.iter().any(|a| a == "--tls-port") {
            // A TLS port answers nothing in clear text: listening is ready.
            return true;
        }
        s.set_read_timeout(Some(Duration::from_millis(500))).ok();
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        // A server with requirepass answers -NOAUTH: it is up.
        matches!(s.read(&mut buf), Ok(n) if n > 0)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A TLS-only server on a free port with `cert`/`key` (PEM files), clients not
    /// authenticated by certificate.
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path, extra: &[&str]) -> Self {
        let port = free_port(false);
        let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
        let p = port.to_string();
        let mut args = vec!["--port", "0", "--tls-port", &p, "--tls-cert-file", cert];
        args.extend(["--tls-key-file", key, "--tls-auth-clients", "no"]);
        args.extend(extra);
        Self::start_on(port, &args)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("server running").id() as i32
    }

    /// A hung server that keeps its sockets.
    pub fn pause(&self) {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.pid(), libc::SIGSTOP) };
    }

    pub fn resume(&self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.pid(), libc::SIGCONT) };
    }

    /// kill -9: the state and the loaded scripts are lost.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same port (empty).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// `redis-cli -p PORT args...`, stdout trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-p", &self.port.to_string()]);
        if let Some(pass) = self.password() {
            cmd.args(["--no-auth-warning", "-a", pass]);
        }
        let out = cmd.args(args).output().expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn password(&self) -> Option<&str> {
        let i = self.args.iter().position(|a| a == "--requirepass")?;
        self.args.get(i + 1).map(String::as_str)
    }

    pub fn flushall(&self) {
        assert_eq!(self.cli(&["FLUSHALL"]), "OK");
    }

    pub fn script_flush(&self) {
        assert_eq!(self.cli(&["SCRIPT", "FLUSH"]), "OK");
    }

    /// `CLIENT KILL TYPE kind` (normal, pubsub).
    pub fn client_kill(&self, kind: &str) -> String {
        self.cli(&["CLIENT", "KILL", "TYPE", kind])
    }

    /// calls of `cmd` (lower case, e.g. "evalsha") in INFO commandstats.
    pub fn command_calls(&self, cmd: &str) -> u64 {
        let info = self.cli(&["INFO", "commandstats"]);
        let prefix = format!("cmdstat_{cmd}:calls=");
        info.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A paused server must be resumed to die cleanly of SIGKILL in every case.
            // SAFETY: signals to our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGCONT) };
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A 3-master Redis Cluster on loopback.
pub struct Cluster {
    pub nodes: Vec<Node>,
}

impl Cluster {
    pub fn start() -> Self {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let port = free_port(true);
            nodes.push(Node::start_on(
                port,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ],
            ));
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Self { nodes };
        cluster.wait_ok();
        cluster
    }

    /// Until every node reports the cluster ok with all slots and 3 nodes.
    pub fn wait_ok(&self) {
        let nodes = &self.nodes;
        let start = Instant::now();
        'wait: while start.elapsed() < Duration::from_secs(20) {
            for n in nodes {
                let info = n.cli(&["CLUSTER", "INFO"]);
                if !(info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_ok:16384")
                    && info.contains("cluster_known_nodes:3"))
                {
                    std::thread::sleep(Duration::from_millis(50));
                    continue 'wait;
                }
            }
            return;
        }
        panic!("cluster not ready within 20 s");
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }
}

/// A timer running `factor` times too fast: its `now` advances `factor` s per real second (from
/// one origin shared by every instance) and its sleeps end `factor` times early. A limiter
/// that trusted client clocks would break.
#[derive(Clone, Debug)]
pub struct DriftTimer {
    pub factor: f64,
    base: TokioTimer,
    /// The base clock's reading when the first drifting clock was made: every drifting clock
    /// reads zero there and runs `factor` times too fast from it. (`TokioTimer`'s process-wide
    /// origin lies an hour in the past; multiplying readings since then would put the clocks
    /// hours apart instead of drifting during the test.)
    start: Duration,
}

impl DriftTimer {
    pub fn new(factor: f64) -> Self {
        static START: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
        let base = TokioTimer::new();
        Self {
            factor,
            base,
            start: *START.get_or_init(|| base.now()),
        }
    }
}

impl Timer for DriftTimer {
    type Sleep = <TokioTimer as Timer>::Sleep;

    fn now(&self) -> Duration {
        self.base
            .now()
            .saturating_sub(self.start)
            .mul_f64(self.factor)
    }

    fn sleep_until(&self, deadline: Duration) -> Self::Sleep {
        let real = Duration::try_from_secs_f64(deadline.as_secs_f64() / self.factor)
            .map_or(Duration::MAX, |since_start| {
                self.start.saturating_add(since_start)
            });
        self.base.sleep_until(real)
    }
}

/// What the tests talk to: one server, or a local 3-master cluster when the environment
/// variable `DIKE_REDIS_CLUSTER=1` is set (the same tests run unchanged on both).
pub struct Redis {
    single: Option<Node>,
    cluster: Option<Cluster>,
}

pub fn cluster_mode() -> bool {
    std::env::var("DIKE_REDIS_CLUSTER").is_ok_and(|v| v == "1")
}

impl Redis {
    pub fn start() -> Self {
        if cluster_mode() {
            Self {
                single: None,
                cluster: Some(Cluster::start()),
            }
        } else {
            Self {
                single: Some(Node::start()),
                cluster: None,
            }
        }
    }

    /// One server with extra arguments, in both modes (ACL and password tests).
    pub fn standalone_with(extra: &[&str]) -> Self {
        Self {
            single: Some(Node::start_with(extra)),
            cluster: None,
        }
    }

    pub fn nodes(&self) -> Vec<&Node> {
        match (&self.single, &self.cluster) {
            (Some(node), _) => vec![node],
            (None, Some(cluster)) => cluster.nodes.iter().collect(),
            (None, None) => unreachable!(),
        }
    }

    fn nodes_mut(&mut self) -> Vec<&mut Node> {
        match (&mut self.single, &mut self.cluster) {
            (Some(node), _) => vec![node],
            (None, Some(cluster)) => cluster.nodes.iter_mut().collect(),
            (None, None) => unreachable!(),
        }
    }

    pub fn url(&self) -> String {
        self.nodes()[0].url()
    }

    /// Every node's URL: one for a server, three for a cluster.
    pub fn urls(&self) -> Vec<String> {
        self.nodes().iter().map(|n| n.url()).collect()
    }

    /// A new connection (its own TCP connections) to the server or the cluster.
    pub async fn connect(&self) -> dike_redis::Connection {
        match &self.cluster {
            Some(cluster) => {
                let urls = cluster.urls();
                let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
                dike_redis::Connection::open_cluster(&urls).await.unwrap()
            }
            None => dike_redis::Connection::open(&self.url()).unwrap(),
        }
    }

    pub fn pause(&self) {
        self.nodes().iter().for_each(|n| n.pause());
    }

    pub fn resume(&self) {
        self.nodes().iter().for_each(|n| n.resume());
    }

    pub fn kill(&mut self) {
        self.nodes_mut().into_iter().for_each(Node::kill);
    }

    /// kill -9 and start again on the same ports, data and scripts lost (a cluster keeps its
    /// nodes.conf, as a restarted master does).
    pub fn restart(&mut self) {
        self.kill();
        self.nodes_mut().into_iter().for_each(|n| n.spawn());
        if let Some(cluster) = &self.cluster {
            cluster.wait_ok();
        }
    }

    /// A command for one key (redirections followed in a cluster).
    pub fn cli(&self, args: &[&str]) -> String {
        let node = self.nodes()[0];
        if self.cluster.is_some() {
            let mut all = vec!["-c"];
            all.extend_from_slice(args);
            node.cli(&all)
        } else {
            node.cli(args)
        }
    }

    pub fn flushall(&self) {
        self.nodes().iter().for_each(|n| n.flushall());
    }

    pub fn script_flush(&self) {
        self.nodes().iter().for_each(|n| n.script_flush());
    }

    /// Clients killed on all nodes.
    pub fn client_kill(&self, kind: &str) -> u64 {
        self.nodes()
            .iter()
            .map(|n| n.client_kill(kind).parse::<u64>().unwrap_or(0))
            .sum()
    }

    /// Calls of `cmd` summed over the nodes.
    pub fn command_calls(&self, cmd: &str) -> u64 {
        self.nodes().iter().map(|n| n.command_calls(cmd)).sum()
    }

    /// Subscribers of `channel`, summed over the nodes.
    pub fn numsub(&self, channel: &str) -> u64 {
        self.nodes()
            .iter()
            .map(|n| {
                n.cli(&["PUBSUB", "NUMSUB", channel])
                    .lines()
                    .last()
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
            })
            .sum()
    }
}

/// One fleet client's admissions: calls `attempt` until `run` has passed since `begin`,
/// sleeping on `timer` for each refusal's wait, and records each admission's round trip
/// (sent, replied). Any other outcome than "admitted and checked" or "rate limited" fails.
pub async fn admissions<T, F, Fut>(
    begin: Instant,
    run: Duration,
    timer: &T,
    mut attempt: F,
) -> Vec<(Instant, Instant)>
where
    T: Timer,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<dike_redis::Admission, dike_redis::ThrottleError>>,
{
    let mut trips = Vec::new();
    while begin.elapsed() < run {
        let start = Instant::now();
        match attempt().await {
            Ok(admission) => {
                assert_eq!(admission, dike_redis::Admission::Checked);
                trips.push((start, Instant::now()));
            }
            Err(dike_redis::ThrottleError::RateLimited(limited)) => {
                timer.sleep(limited.wait()).await;
            }
            Err(err) => panic!("{err}"),
        }
    }
    trips
}

/// The largest number of admissions whose whole round trip lies in a window of length `w`.
pub fn max_in_window(trips: &[(Instant, Instant)], w: Duration) -> usize {
    trips
        .iter()
        .map(|&(start, _)| {
            trips
                .iter()
                .filter(|&&(s, e)| s >= start && e <= start + w)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// Checks a fleet's admissions (`trips`, sorted here) against GCRA's bound `rate·W + burst`
/// in windows of 0.1 s to 1 s and over the whole run, and that the run reached at least
/// `saturation` of the bound. `label` names the limit in messages.
pub fn assert_fleet_bound(
    label: &str,
    trips: &mut [(Instant, Instant)],
    rate: u32,
    burst: u32,
    saturation: f64,
) {
    trips.sort();
    let bound = |w: Duration| w.as_secs_f64() * f64::from(rate) + f64::from(burst);
    for w in [0.1, 0.25, 0.5, 1.0].map(Duration::from_secs_f64) {
        let max = max_in_window(trips, w);
        assert!(
            max as f64 <= bound(w),
            "{label}: {max} admissions in a {w:?} window, bound {}",
            bound(w)
        );
    }
    let whole = trips.last().unwrap().1 - trips.first().unwrap().0;
    let n = trips.len() as f64;
    eprintln!(
        "{label}: {n} admissions in {whole:?} (bound {:.1})",
        bound(whole)
    );
    assert!(
        n <= bound(whole),
        "{label}: {n} in the whole run of {whole:?}, bound {}",
        bound(whole)
    );
    assert!(
        n >= saturation * bound(whole),
        "{label}: only {n} of a bound of {} under saturation",
        bound(whole)
    );
}

//! A real Kafka-protocol broker for tests: `tansu` (Apache-Kafka-compatible,
//! one binary) on a free port with fresh storage, stopped when dropped.
//!
//! Storage is tansu's libSQL engine (an SQLite file in the test's own
//! directory): it keeps records and committed offsets across a restart of
//! the broker, which the outage tests need, and its consumer-group offsets
//! behave as Kafka's do. tansu 0.6 deletes every topic when asked to delete
//! one, so tests use a unique topic name each and never delete.
//!
//! The binary is `$TANSU`, else `tansu` on `PATH`, else `~/.cargo/bin/tansu`.
//! When none exists the test is skipped with a printed reason, except under
//! `CI=true`, where that fails.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::{TestDir, must_not_skip};

/// How long a broker may take to accept connections.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// A running tansu broker; killed on drop.
#[derive(Debug)]
pub struct KafkaBroker {
    child: Option<Child>,
    binary: PathBuf,
    port: u16,
    dir: TestDir,
}

impl KafkaBroker {
    /// Starts a broker on a free port with empty storage; `None` (the test
    /// should return) when tansu is not installed and `CI` is not `true`.
    pub async fn start() -> Option<Self> {
        let Some(binary) = find_binary() else {
            let reason = "tansu is not installed (cargo install tansu --version 0.6.0 --locked --no-default-features --features libsql)";
            assert!(
                !must_not_skip(),
                "a Kafka broker is required under CI: {reason}"
            );
            eprintln!("skipping: {reason}");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut broker = Self {
            child: None,
            binary,
            port,
            dir: TestDir::new("tansu"),
        };
        broker.resume().await;
        Some(broker)
    }

    /// `127.0.0.1:<port>`: what `bootstrap.servers` / `KAFKA_BROKERS` take.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates a topic with `partitions` partitions.
    pub async fn create_topic(&self, name: &str, partitions: u32) {
        let output = Command::new(&self.binary)
            .args(["topic", "create", name, "--partitions"])
            .arg(partitions.to_string())
            .arg("--broker")
            .arg(self.url())
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .current_dir(self.dir.path())
            .output()
            .await
            .expect("run tansu topic create");
        assert!(
            output.status.success(),
            "tansu topic create {name}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Kills the broker (as an outage would); [`KafkaBroker::resume`]
    /// starts it again on the same port with the same storage.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the broker (again) and waits until it accepts connections.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("tansu.log"))
            .expect("broker log file");
        let child = Command::new(&self.binary)
            .arg("broker")
            .arg("--listener-url")
            .arg(self.url())
            .arg("--advertised-listener-url")
            .arg(self.url())
            .arg("--storage-engine")
            .arg("sqlite://tansu.db")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        self.wait_ready().await;
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Polls the port until the broker accepts a connection (there is no
    /// event to await), failing with the broker's log if it exits or takes
    /// longer than the deadline.
    async fn wait_ready(&mut self) {
        let deadline = tokio::time::Instant::now() + START_DEADLINE;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("tansu exited with {status}: {}", self.log());
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "tansu did not listen within {START_DEADLINE:?}: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tansu.log")).unwrap_or_default()
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

fn find_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TANSU") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("tansu"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let home = std::env::var_os("HOME")?;
        let candidate = PathBuf::from(home).join(".cargo/bin/tansu");
        candidate.is_file().then_some(candidate)
    })
}

//! A real Apache Kafka broker (KRaft, broker + controller in one JVM) on free loopback ports with
//! its own data folder, started from the Maven jars that `./test.sh` installs.
//!
//! The jars are found in `$KAFKA_LIBS`, else in the test cache
//! (`~/.cache/tweet-pipeline/kafka/libs`). Without them a test is skipped with a visible
//! message, unless `REQUIRE_KAFKA=1` (as `./test.sh` sets), which makes it fail instead.

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::proxy::TcpProxy;
use crate::{cache_dir, free_port, skip};

/// A running broker; stopped (SIGKILL) and its folder deleted when dropped.
pub struct KafkaBroker {
    dir: tempfile::TempDir,
    libs: PathBuf,
    port: u16,
    controller_port: u16,
    child: Option<Child>,
    extra: Vec<(String, String)>,
    /// Extra arguments of the storage format (SCRAM credentials live in the metadata log).
    format_args: Vec<String>,
    /// In a cluster: this node's id and the static controller quorum (`id@host:port,...`).
    node: Option<(u32, String)>,
}

/// Several brokers (each also a controller of a static KRaft quorum) replicating each other.
pub struct KafkaCluster {
    pub brokers: Vec<KafkaBroker>,
}

impl KafkaCluster {
    /// `n` nodes whose internal topics (offsets, transactions) are replicated `n` times with
    /// `min.insync.replicas` `n - 1`; `None` after SKIPPED without the jars.
    pub fn start_or_skip(test: &str, n: u32) -> Option<Self> {
        let libs = libs_or_skip(test)?;
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let voters = ports
            .iter()
            .enumerate()
            .map(|(i, (_, c))| format!("{}@127.0.0.1:{c}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let replicated = |k: &str, v: u32| (k.to_string(), v.to_string());
        let extra = vec![
            replicated("offsets.topic.replication.factor", n),
            replicated("transaction.state.log.replication.factor", n),
            replicated("transaction.state.log.min.isr", n - 1),
            replicated("default.replication.factor", n),
            replicated("min.insync.replicas", n - 1),
        ];
        let mut brokers = Vec::new();
        for (i, (port, controller_port)) in ports.into_iter().enumerate() {
            let dir = tempfile::Builder::new()
                .prefix("kafka-test-")
                .tempdir()
                .expect("tempdir");
            let broker = KafkaBroker {
                dir,
                libs: libs.clone(),
                port,
                controller_port,
                child: None,
                extra: extra.clone(),
                format_args: Vec::new(),
                node: Some((i as u32 + 1, voters.clone())),
            };
            broker.write_properties().expect("broker properties");
            broker.format_storage().expect("format broker storage");
            brokers.push(broker);
        }
        // Each node waits for a quorum: start them all, then wait for each.
        for b in brokers.iter_mut() {
            b.launch()
                .unwrap_or_else(|e| panic!("{test}: cannot start Kafka: {e:#}"));
        }
        for b in brokers.iter_mut() {
            b.wait_ready(Duration::from_secs(90))
                .unwrap_or_else(|e| panic!("{test}: Kafka node: {e:#}"));
        }
        Some(Self { brokers })
    }

    /// Every node's PLAINTEXT address, comma-separated.
    pub fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .map(KafkaBroker::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node (index into `brokers`) leading partition `partition` of `topic`.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<usize> {
        let args = ["leader", &self.bootstrap(), topic, &partition.to_string()];
        let out = python_script("admin.py", &args)?;
        let id: usize = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
        id.checked_sub(1)
    }
}

/// A SASL user the broker knows for PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512.
pub const SASL_USER: (&str, &str) = ("alice", "alice-secret");

/// Where the broker jars live, if installed.
pub fn libs_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("KAFKA_LIBS")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("kafka").join("libs"));
    let has_jars = std::fs::read_dir(&dir)
        .map(|mut entries| {
            entries.any(|e| {
                e.map(|e| e.file_name().to_string_lossy().starts_with("kafka_2.13"))
                    .unwrap_or(false)
            })
        })
        .unwrap_or(false);
    has_jars.then_some(dir)
}

/// `kafka-storage format` arguments that create [`SASL_USER`] for both SCRAM mechanisms.
fn scram_users() -> Vec<String> {
    let (user, password) = SASL_USER;
    ["SCRAM-SHA-256", "SCRAM-SHA-512"]
        .iter()
        .flat_map(|m| {
            [
                "--add-scram".to_string(),
                format!("{m}=[name={user},password={password}]"),
            ]
        })
        .collect()
}

/// Broker settings that make the SASL listener `listener` (lower case) accept [`SASL_USER`]
/// with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 (the SCRAM credentials come from
/// [`scram_users`] at format time).
fn sasl_listener_settings(listener: &str) -> Vec<(String, String)> {
    let (user, password) = SASL_USER;
    let scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;";
    vec![
        (
            "sasl.enabled.mechanisms".into(),
            "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512".into(),
        ),
        (
            format!("listener.name.{listener}.plain.sasl.jaas.config"),
            format!("org.apache.kafka.common.security.plain.PlainLoginModule required user_{user}=\"{password}\";"),
        ),
        (
            format!("listener.name.{listener}.scram-sha-256.sasl.jaas.config"),
            scram.into(),
        ),
        (
            format!("listener.name.{listener}.scram-sha-512.sasl.jaas.config"),
            scram.into(),
        ),
    ]
}

/// The TLS listeners of [`KafkaBroker::start_with_tls_or_skip`] and the PEM files clients use.
pub struct TlsListeners {
    /// `host:port` of the SSL listener (a client certificate is required).
    pub ssl: String,
    /// `host:port` of the SASL_SSL listener.
    pub sasl_ssl: String,
    certs: tempfile::TempDir,
}

impl TlsListeners {
    /// The test CA (it signed the broker's and the client's certificates).
    pub fn ca(&self) -> PathBuf {
        self.certs.path().join("ca.pem")
    }
    pub fn client_cert(&self) -> PathBuf {
        self.certs.path().join("client.pem")
    }
    pub fn client_key(&self) -> PathBuf {
        self.certs.path().join("client.key")
    }
}

/// A CA, a broker certificate for 127.0.0.1 and a client certificate, signed by the CA, as
/// PEM files in `dir` (the broker's key and chain also as one PEM keystore).
fn make_test_certificates(dir: &std::path::Path) -> Result<()> {
    let openssl = |args: &[&str]| -> Result<()> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=tweet-pipeline test CA",
    ])?;
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )?;
    for (name, cn) in [("broker", "127.0.0.1"), ("client", "kafka-bridge")] {
        let subject = format!("/CN={cn}");
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &subject,
        ])?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ])?;
    }
    // Kafka's PEM keystore: the (PKCS#8, unencrypted) key, then the certificate.
    let keystore = [
        std::fs::read_to_string(dir.join("broker.key"))?,
        std::fs::read_to_string(dir.join("broker.pem"))?,
    ]
    .concat();
    std::fs::write(dir.join("broker-keystore.pem"), keystore)?;
    Ok(())
}

/// The broker jars, or `None` after printing SKIPPED (a panic when `REQUIRE_KAFKA=1`).
fn libs_or_skip(test: &str) -> Option<PathBuf> {
    let libs = libs_dir();
    if libs.is_none() {
        if std::env::var("REQUIRE_KAFKA").as_deref() == Ok("1") {
            panic!("{test}: REQUIRE_KAFKA=1 but the Kafka jars are not installed (run ./test.sh)");
        }
        skip(
            test,
            "the Kafka broker jars are not installed (./test.sh installs them)",
        );
    }
    libs
}

impl KafkaBroker {
    /// Start a broker, or return `None` after printing SKIPPED when the jars are absent
    /// (panics instead when `REQUIRE_KAFKA=1`).
    pub fn start_or_skip(test: &str) -> Option<Self> {
        Self::start_with_or_skip(test, Vec::new())
    }

    /// Like [`KafkaBroker::start_or_skip`], with extra `server.properties` entries.
    pub fn start_with_or_skip(test: &str, extra: Vec<(String, String)>) -> Option<Self> {
        let libs = libs_or_skip(test)?;
        Some(
            Self::start(libs, extra)
                .unwrap_or_else(|e| panic!("{test}: cannot start Kafka: {e:#}")),
        )
    }

    /// A broker that every client reaches through a [`TcpProxy`] (it advertises the proxy's
    /// address), for faults between clients and broker.
    pub fn start_behind_proxy_or_skip(test: &str) -> Option<(Self, TcpProxy)> {
        let libs = libs_or_skip(test)?;
        let port = free_port();
        let proxy = TcpProxy::start(port);
        let advertised = format!("PLAINTEXT://127.0.0.1:{}", proxy.port());
        let broker = Self::start_on(
            libs,
            port,
            free_port(),
            vec![("advertised.listeners".into(), advertised)],
        )
        .unwrap_or_else(|e| panic!("{test}: cannot start Kafka: {e:#}"));
        Some((broker, proxy))
    }

    fn start(libs: PathBuf, extra: Vec<(String, String)>) -> Result<Self> {
        Self::start_on(libs, free_port(), free_port(), extra)
    }

    /// A broker on given ports (the pipeline's own broker listens on 9092).
    pub fn start_on(
        libs: PathBuf,
        port: u16,
        controller_port: u16,
        extra: Vec<(String, String)>,
    ) -> Result<Self> {
        Self::start_formatted(libs, port, controller_port, extra, Vec::new())
    }

    fn start_formatted(
        libs: PathBuf,
        port: u16,
        controller_port: u16,
        extra: Vec<(String, String)>,
        format_args: Vec<String>,
    ) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("kafka-test-").tempdir()?;
        let broker = Self {
            dir,
            libs,
            port,
            controller_port,
            child: None,
            extra,
            format_args,
            node: None,
        };
        broker.write_properties()?;
        broker.format_storage()?;
        let mut broker = broker;
        broker.spawn()?;
        Ok(broker)
    }

    /// A broker with a second listener, SASL_PLAINTEXT, accepting [`SASL_USER`] with PLAIN,
    /// SCRAM-SHA-256 and SCRAM-SHA-512: returns it and that listener's `host:port`.
    pub fn start_with_sasl_or_skip(test: &str) -> Option<(Self, String)> {
        let libs = libs_or_skip(test)?;
        let (port, controller_port, sasl_port) = (free_port(), free_port(), free_port());
        let extra: Vec<(String, String)> = [
            ("listeners", format!("PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}")),
            ("advertised.listeners", format!("PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain(sasl_listener_settings("sasl_plaintext"))
        .collect();
        let broker = Self::start_formatted(libs, port, controller_port, extra, scram_users())
            .unwrap_or_else(|e| panic!("{test}: cannot start Kafka with SASL: {e:#}"));
        Some((broker, format!("127.0.0.1:{sasl_port}")))
    }

    /// A broker with two TLS listeners: SSL requiring a client certificate, and SASL_SSL
    /// accepting [`SASL_USER`] with PLAIN and SCRAM. The certificates (a test CA, the broker's
    /// for 127.0.0.1, a client's) are made with `openssl`; without it the test is SKIPPED.
    pub fn start_with_tls_or_skip(test: &str) -> Option<(Self, TlsListeners)> {
        let libs = libs_or_skip(test)?;
        if crate::which("openssl").is_none() {
            skip(
                test,
                "openssl is not installed (it makes the test certificates)",
            );
            return None;
        }
        let certs = tempfile::Builder::new()
            .prefix("kafka-tls-")
            .tempdir()
            .ok()?;
        make_test_certificates(certs.path())
            .unwrap_or_else(|e| panic!("{test}: cannot make test certificates: {e:#}"));
        let dir = certs.path();
        let (port, controller_port, ssl_port, sasl_ssl_port) =
            (free_port(), free_port(), free_port(), free_port());
        let extra: Vec<(String, String)> = [
            ("listeners", format!("PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port},SSL://127.0.0.1:{ssl_port},SASL_SSL://127.0.0.1:{sasl_ssl_port}")),
            ("advertised.listeners", format!("PLAINTEXT://127.0.0.1:{port},SSL://127.0.0.1:{ssl_port},SASL_SSL://127.0.0.1:{sasl_ssl_port}")),
            ("ssl.keystore.type", "PEM".into()),
            ("ssl.keystore.location", dir.join("broker-keystore.pem").display().to_string()),
            ("ssl.truststore.type", "PEM".into()),
            ("ssl.truststore.location", dir.join("ca.pem").display().to_string()),
            ("listener.name.ssl.ssl.client.auth", "required".into()),
            ("listener.name.sasl_ssl.ssl.client.auth", "none".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain(sasl_listener_settings("sasl_ssl"))
        .collect();
        let broker = Self::start_formatted(libs, port, controller_port, extra, scram_users())
            .unwrap_or_else(|e| panic!("{test}: cannot start Kafka with TLS: {e:#}"));
        Some((
            broker,
            TlsListeners {
                ssl: format!("127.0.0.1:{ssl_port}"),
                sasl_ssl: format!("127.0.0.1:{sasl_ssl_port}"),
                certs,
            },
        ))
    }

    /// `127.0.0.1:<port>` of the PLAINTEXT listener.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Bytes of `topic`'s log segments on this broker's disk (compression shows here).
    pub fn topic_bytes(&self, topic: &str) -> u64 {
        let prefix = format!("{topic}-");
        let Ok(dirs) = std::fs::read_dir(self.dir.path().join("data")) else {
            return 0;
        };
        dirs.flatten()
            .filter(|d| d.file_name().to_string_lossy().starts_with(&prefix))
            .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
            .filter(|f| f.path().extension().is_some_and(|e| e == "log"))
            .map(|f| f.metadata().map_or(0, |m| m.len()))
            .sum()
    }

    /// The broker's own log (stdout and stderr of the JVM).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("broker.log")
    }

    fn java_cmd(&self) -> Command {
        let mut cmd = Command::new("java");
        cmd.arg("-Xms256m")
            .arg("-Xmx512m")
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                crate::workspace_root()
                    .join("testkit/kafka/log4j2.properties")
                    .display()
            ))
            .arg("-cp")
            .arg(format!("{}/*", self.libs.display()));
        cmd
    }

    fn properties_path(&self) -> PathBuf {
        self.dir.path().join("server.properties")
    }

    fn write_properties(&self) -> Result<()> {
        let (p, c) = (self.port, self.controller_port);
        let data = self.dir.path().join("data");
        let (node_id, quorum) = match &self.node {
            Some((id, voters)) => (*id, format!("controller.quorum.voters={voters}")),
            None => (
                1,
                format!("controller.quorum.bootstrap.servers=127.0.0.1:{c}"),
            ),
        };
        let mut text = format!(
            "process.roles=broker,controller\n\
             node.id={node_id}\n\
             {quorum}\n\
             listeners=PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{p}\n\
             controller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=PLAINTEXT\n\
             listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL\n\
             log.dirs={}\n\
             num.partitions=1\n\
             offsets.topic.replication.factor=1\n\
             offsets.topic.num.partitions=3\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n\
             share.coordinator.state.topic.replication.factor=1\n\
             share.coordinator.state.topic.min.isr=1\n\
             group.initial.rebalance.delay.ms=0\n\
             log.retention.ms=-1\n\
             auto.create.topics.enable=false\n",
            data.display()
        );
        for (k, v) in &self.extra {
            text.push_str(&format!("{k}={v}\n"));
        }
        std::fs::write(self.properties_path(), text)?;
        Ok(())
    }

    fn format_storage(&self) -> Result<()> {
        let out = self
            .java_cmd()
            .arg("kafka.tools.StorageTool")
            .arg("format")
            .arg("-t")
            .arg("tweet-pipeline-test-cluster")
            .arg("-c")
            .arg(self.properties_path())
            .args(self.node.is_none().then_some("--standalone"))
            .args(&self.format_args)
            .output()
            .context("cannot run java (is a JDK installed?)")?;
        if !out.status.success() {
            bail!(
                "kafka StorageTool format failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    fn spawn(&mut self) -> Result<()> {
        self.launch()?;
        self.wait_ready(Duration::from_secs(60))
    }

    /// Start the JVM without waiting for it.
    fn launch(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = self
            .java_cmd()
            .arg("kafka.Kafka")
            .arg(self.properties_path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start the Kafka broker")?;
        self.child = Some(child);
        Ok(())
    }

    /// Poll until the broker answers on its port (and has had a moment to elect itself).
    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "the broker exited with {status}; log:\n{}",
                        std::fs::read_to_string(self.log_path()).unwrap_or_default()
                    );
                }
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!(
                    "the broker did not listen on {} within {timeout:?}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop the broker abruptly (SIGKILL), keeping its data.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop the broker cleanly (SIGTERM, then wait), keeping its data.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            crate::signal(&child, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freeze the broker (SIGSTOP): its connections stay open and nothing answers, as with a
    /// hung broker; [`KafkaBroker::unfreeze`] lets it go on.
    pub fn freeze(&self) {
        if let Some(child) = &self.child {
            crate::signal(child, libc::SIGSTOP);
        }
    }

    pub fn unfreeze(&self) {
        if let Some(child) = &self.child {
            crate::signal(child, libc::SIGCONT);
        }
    }

    /// Start the broker again on the same ports and data.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn()
    }

    /// Append a note to the broker log (handy to line up test steps with broker events).
    pub fn note(&self, text: &str) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .open(self.log_path())
        {
            let _ = writeln!(f, "=== test: {text}");
        }
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One record read back from Kafka by a real client (Python confluent-kafka).
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaRecord {
    pub partition: i32,
    pub offset: i64,
    /// `None` is a null key.
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    /// The value is null (a tombstone), not empty.
    pub tombstone: bool,
    /// 1 = CreateTime, 2 = LogAppendTime.
    pub ts_type: i64,
    pub ts: i64,
    pub headers: std::collections::HashMap<String, Option<String>>,
}

impl KafkaRecord {
    /// The `fluvio.offset` header (the bridge writes it on every record).
    pub fn fluvio_offset(&self) -> i64 {
        self.headers
            .get("fluvio.offset")
            .and_then(|v| v.as_deref())
            .and_then(|v| v.parse().ok())
            .expect("a fluvio.offset header")
    }
}

/// Every record of `topic` a `read_committed` reader sees, read with Python confluent-kafka
/// (`kafka/read_topic.py`), or `None` after printing SKIPPED when the test venv is missing.
pub fn read_topic(broker: &str, topic: &str) -> Option<Vec<KafkaRecord>> {
    read_topic_with(broker, topic, "read_committed")
}

fn read_topic_with(broker: &str, topic: &str, isolation: &str) -> Option<Vec<KafkaRecord>> {
    use base64::Engine as _;
    let out = python_script("read_topic.py", &[broker, topic, isolation])?;
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or(""))
            .expect("base64")
    };
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
                KafkaRecord {
                    partition: v["partition"].as_i64().unwrap_or(-1) as i32,
                    offset: v["offset"].as_i64().unwrap_or(-1),
                    key: (!v["key"].is_null()).then(|| b64(&v["key"])),
                    value: b64(&v["value"]),
                    tombstone: v["tombstone"].as_bool().unwrap_or(false),
                    ts_type: v["ts_type"].as_i64().unwrap_or(0),
                    ts: v["ts"].as_i64().unwrap_or(0),
                    headers: v["headers"]
                        .as_object()
                        .map(|h| {
                            h.iter()
                                .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string)))
                                .collect()
                        })
                        .unwrap_or_default(),
                }
            })
            .collect(),
    )
}

/// Run `testkit/kafka/admin.py` (confluent-kafka) with `args`; `false` (after SKIPPED) when the
/// test venv is missing.
pub fn admin(args: &[&str]) -> bool {
    python_script("admin.py", args).is_some()
}

/// Run `testkit/kafka/<script>` with the test venv's Python (confluent-kafka), asserting it
/// succeeded; `None` after SKIPPED when the venv is missing.
fn python_script(script: &str, args: &[&str]) -> Option<std::process::Output> {
    let Some(py) = crate::python() else {
        skip(
            &format!("Kafka through confluent-kafka ({script})"),
            "the test Python venv is not installed (./test.sh installs it)",
        );
        return None;
    };
    let out = Command::new(py)
        .arg(crate::workspace_root().join("testkit/kafka").join(script))
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{script} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out)
}

/// Every record of `topic` as a `read_uncommitted` reader sees it (records of aborted
/// transactions included), or `None` after SKIPPED.
pub fn read_topic_uncommitted(broker: &str, topic: &str) -> Option<Vec<KafkaRecord>> {
    read_topic_with(broker, topic, "read_uncommitted")
}

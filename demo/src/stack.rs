//! Starting and stopping the whole stack.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proxy_core::shutdown::{self, ShutdownTrigger};
use serde_norway::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::identity::DemoIdentity;
use crate::patch;

/// An environment lookup handed to every component instead of mutating the
/// process environment.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The example services, in the order their sidecars must be bound: order's
/// sidecar needs the other two sidecars' addresses.
const SERVICES: [&str; 3] = ["catalog", "payment", "order"];

/// Documented ports of the apps (DESIGN.md).
fn app_port(service: &str) -> u16 {
    match service {
        "catalog" => 8081,
        "order" => 8082,
        _ => 8083,
    }
}

/// How to start the stack.
#[derive(Clone)]
pub struct StackOptions {
    /// The folder holding `gateway.yaml`, `sidecar-<service>.yaml` and `keys/`.
    pub config_dir: PathBuf,
    /// Where the services keep their SQLite files and the stack writes the
    /// configs it derived.
    pub data_dir: PathBuf,
    /// Bind every listener on `127.0.0.1:0` instead of the documented ports.
    pub ephemeral: bool,
    /// Environment for the components (`OTEL_EXPORTER_OTLP_*` and friends).
    pub env: EnvLookup,
}

/// Why the stack could not start.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        what: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("gateway: {0}")]
    Gateway(#[from] gateway::GatewayError),
    #[error("{service} sidecar: {message}")]
    Sidecar { service: String, message: String },
    #[error("identity: {0}")]
    Identity(String),
    #[error("the stack did not become ready within {0:?}: {1}")]
    NotReady(Duration, String),
}

/// The addresses of one sidecar.
#[derive(Clone, Copy, Debug)]
pub struct SidecarAddrs {
    pub inbound: SocketAddr,
    pub outbound: SocketAddr,
    pub admin: SocketAddr,
}

/// A running stack. [`Stack::stop`] shuts everything down cleanly.
pub struct Stack {
    pub gateway: SocketAddr,
    pub gateway_admin: SocketAddr,
    /// App addresses by service name.
    pub apps: BTreeMap<&'static str, SocketAddr>,
    /// Sidecar addresses by service name.
    pub sidecars: BTreeMap<&'static str, SidecarAddrs>,
    /// The in-process identity issuer (HTTPS) and the trust anchor its
    /// certificates lead to.
    pub identity_issuer: SocketAddr,
    pub trust_anchor: PathBuf,
    trigger: ShutdownTrigger,
    tasks: Vec<(String, JoinHandle<Result<(), String>>)>,
}

fn read_yaml(path: &Path) -> Result<Value, StackError> {
    let text = std::fs::read_to_string(path).map_err(|source| StackError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_norway::from_str(&text).map_err(|e| StackError::Config {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

async fn bind(what: &str, addr: SocketAddr) -> Result<TcpListener, StackError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StackError::Bind {
            what: what.to_owned(),
            addr,
            source,
        })
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn yaml_str(s: impl ToString) -> Value {
    Value::String(s.to_string())
}

impl Stack {
    /// Binds every listener, then starts every component. Nothing is left
    /// running when this returns an error.
    pub async fn start(opts: StackOptions) -> Result<Stack, StackError> {
        std::fs::create_dir_all(&opts.data_dir).map_err(|source| StackError::Read {
            path: opts.data_dir.clone(),
            source,
        })?;
        // Paths inside the configs are relative to `config_dir`; the derived
        // gateway config lives elsewhere, so they are made absolute.
        let config_dir =
            std::fs::canonicalize(&opts.config_dir).map_err(|source| StackError::Read {
                path: opts.config_dir.clone(),
                source,
            })?;
        let port = |p: u16| if opts.ephemeral { local(0) } else { local(p) };
        let (trigger, signal) = shutdown::channel();
        let mut tasks = Vec::new();

        // 1. The apps' listeners.
        let mut app_listeners = BTreeMap::new();
        let mut apps = BTreeMap::new();
        for svc in SERVICES {
            let l = bind(svc, port(app_port(svc))).await?;
            apps.insert(
                svc,
                l.local_addr().map_err(|source| StackError::Bind {
                    what: svc.into(),
                    addr: port(0),
                    source,
                })?,
            );
            app_listeners.insert(svc, l);
        }

        // The identity issuer: CA and tokens under the data dir, made once.
        // The gateway is a workload of the mesh too: it calls the sidecars
        // over mutual TLS with its own certificate.
        let workloads = [SERVICES.as_slice(), &["gateway"]].concat();
        let identity = DemoIdentity::prepare(&opts.data_dir, &workloads, port(7443)).await?;
        let (identity_issuer, trust_anchor) = (identity.addr, identity.trust_anchor.clone());

        // 2. A sidecar per app, from config/sidecar-<service>.yaml.
        let mut sidecars = BTreeMap::new();
        let mut bound_sidecars = Vec::new();
        for svc in SERVICES {
            let path = config_dir.join(format!("sidecar-{svc}.yaml"));
            let mut doc = read_yaml(&path)?;
            if opts.ephemeral {
                for field in ["inbound.address", "outbound.address", "admin.address"] {
                    patch::set(&mut doc, field, yaml_str(local(0)));
                }
            }
            patch::set(&mut doc, "inbound.app", yaml_str(apps[svc]));
            identity.patch(&mut doc, svc);
            if svc == "order" {
                for peer in ["catalog", "payment"] {
                    let addrs: &SidecarAddrs = &sidecars[peer];
                    patch::set(
                        &mut doc,
                        &format!("services.{peer}.endpoints"),
                        patch::endpoints(addrs.inbound),
                    );
                }
            }
            let text = serde_norway::to_string(&doc).map_err(|e| StackError::Config {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let env = opts.env.clone();
            let config =
                sidecar::SidecarConfig::from_yaml(&text, &move |k: &str| env(k)).map_err(|e| {
                    StackError::Config {
                        path: path.clone(),
                        message: e.to_string(),
                    }
                })?;
            let sc = sidecar::Sidecar::bind_with_identity(config, signal.clone())
                .await
                .map_err(|e| StackError::Sidecar {
                    service: svc.into(),
                    message: e.to_string(),
                })?;
            sidecars.insert(
                svc,
                SidecarAddrs {
                    inbound: sc.inbound_addr(),
                    outbound: sc.outbound_addr(),
                    admin: sc.admin_addr(),
                },
            );
            bound_sidecars.push((svc, sc));
        }

        // 3. The gateway, from config/gateway.yaml with the sidecars as upstreams.
        let gw_path = config_dir.join("gateway.yaml");
        let mut doc = read_yaml(&gw_path)?;
        if opts.ephemeral {
            patch::set(&mut doc, "listeners.0.address", yaml_str(local(0)));
            patch::set(&mut doc, "admin.address", yaml_str(local(0)));
        }
        for svc in SERVICES {
            patch::set(
                &mut doc,
                &format!("upstreams.{svc}.endpoints"),
                patch::endpoints(sidecars[svc].inbound),
            );
            // Every hop is mutual TLS: the gateway checks that the sidecar
            // it reached is the service's workload.
            patch::set(
                &mut doc,
                &format!("upstreams.{svc}.tls.identity"),
                yaml_str(format!(
                    "spiffe://{}/ns/default/sa/{svc}",
                    crate::identity::TRUST_DOMAIN
                )),
            );
        }
        // The gateway's own certificate, from the same issuer as the
        // sidecars' (the `gateway` workload: spiffe://weir.local/ns/default/sa/gateway).
        identity.patch(&mut doc, "gateway");
        // The dashboard's mesh view reads the sidecars where they really listen.
        patch::set(
            &mut doc,
            "dashboard.sidecars",
            patch::peers(sidecars.iter().map(|(svc, a)| (*svc, a.admin))),
        );
        for i in 0..16 {
            let field = format!("auth.jwt.{i}.jwks.file");
            if let Some(file) = patch::get_str(&doc, &field).map(str::to_owned) {
                let abs = config_dir.join(file);
                patch::set(&mut doc, &field, yaml_str(abs.display()));
            }
        }
        let derived = opts.data_dir.join("gateway.yaml");
        let text = serde_norway::to_string(&doc).map_err(|e| StackError::Config {
            path: gw_path.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&derived, text).map_err(|source| StackError::Read {
            path: derived.clone(),
            source,
        })?;
        let env = opts.env.clone();
        let gw = gateway::Gateway::bind(&derived, move |k| env(k)).await?;
        let addrs = gw.local_addrs();
        let gateway_addr = addrs
            .get("public")
            .copied()
            .or_else(|| addrs.values().next().copied())
            .unwrap_or(local(0));
        let gateway_admin = addrs.get("admin").copied().unwrap_or(local(0));

        // 4. Everything is bound: start serving.
        // Each app exports under its own name (catalog, order, payment): the
        // process-wide OTEL_SERVICE_NAME would give all three the same one.
        let service_env = |k: &str| match k {
            "OTEL_SERVICE_NAME" => None,
            _ => opts.env.as_ref()(k),
        };
        let telemetry_error = |svc: &str, e: &dyn std::fmt::Display| StackError::Config {
            path: PathBuf::from(svc),
            message: format!("telemetry: {e}"),
        };
        tasks.push(("identity-issuer".to_owned(), identity.spawn(signal.clone())));
        let mut catalog_cfg = catalog::Config::new(&opts.data_dir)
            .with_telemetry_from(&service_env)
            .map_err(|e| telemetry_error("catalog", &e))?;
        // Order events: the order service publishes, the catalog consumes,
        // on whichever buses the environment names (docs/events.md).
        let var = |k: &str| opts.env.as_ref()(k);
        catalog_cfg.amqp_url = var("AMQP_URL");
        catalog_cfg.kafka_brokers = var("KAFKA_BROKERS");
        if let Some(exchange) = var("AMQP_EXCHANGE") {
            catalog_cfg.amqp_exchange = exchange;
        }
        if let Some(queue) = var("CATALOG_AMQP_QUEUE") {
            catalog_cfg.amqp_queue = queue;
        }
        if let Some(topic) = var("KAFKA_TOPIC") {
            catalog_cfg.kafka_topic = topic;
        }
        // The demo shows retries and circuit breaking with payment's fault
        // knobs, which are off unless a deployment turns them on.
        let payment_cfg = payment::Config::new(&opts.data_dir)
            .with_faults_enabled()
            .with_telemetry_from(&service_env)
            .map_err(|e| telemetry_error("payment", &e))?;
        let mut order_cfg = order::Config::new(&opts.data_dir)
            .with_telemetry_from(&service_env)
            .map_err(|e| telemetry_error("order", &e))?;
        order_cfg.outbound_proxy = Some(sidecars["order"].outbound);
        order_cfg.amqp_url = var("AMQP_URL");
        order_cfg.kafka_brokers = var("KAFKA_BROKERS");
        order_cfg.amqp_exchange = catalog_cfg.amqp_exchange.clone();
        order_cfg.kafka_topic = catalog_cfg.kafka_topic.clone();
        for (svc, listener) in app_listeners {
            let stop = signal.wait();
            let handle = match svc {
                "catalog" => {
                    let cfg = catalog_cfg.clone();
                    tokio::spawn(async move {
                        catalog::run(cfg, listener, stop)
                            .await
                            .map_err(|e| e.to_string())
                    })
                }
                "payment" => {
                    let cfg = payment_cfg.clone();
                    tokio::spawn(async move {
                        payment::run(cfg, listener, stop)
                            .await
                            .map_err(|e| e.to_string())
                    })
                }
                _ => {
                    let cfg = order_cfg.clone();
                    tokio::spawn(async move {
                        order::run(cfg, listener, stop)
                            .await
                            .map_err(|e| e.to_string())
                    })
                }
            };
            tasks.push((svc.to_owned(), handle));
        }
        for (svc, sc) in bound_sidecars {
            let stop = signal.clone();
            tasks.push((
                format!("{svc}-sidecar"),
                tokio::spawn(async move { sc.serve(stop).await.map_err(|e| e.to_string()) }),
            ));
        }
        let stop = signal.clone();
        tasks.push((
            "gateway".to_owned(),
            tokio::spawn(async move {
                gw.serve(stop).await;
                Ok(())
            }),
        ));
        Ok(Stack {
            gateway: gateway_addr,
            gateway_admin,
            apps,
            sidecars,
            identity_issuer,
            trust_anchor,
            trigger,
            tasks,
        })
    }

    /// Waits until the gateway and every sidecar answer `/readyz` with 200
    /// (a sidecar is ready once its app answers).
    pub async fn wait_ready(&self, within: Duration) -> Result<(), StackError> {
        let mut admins: Vec<(String, SocketAddr)> = vec![("gateway".into(), self.gateway_admin)];
        admins.extend(
            self.sidecars
                .iter()
                .map(|(s, a)| (format!("{s}-sidecar"), a.admin)),
        );
        let deadline = tokio::time::Instant::now() + within;
        for (name, addr) in admins {
            loop {
                if readyz(addr).await {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(StackError::NotReady(
                        within,
                        format!("{name} at {addr} is not ready"),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Stops every component (in-flight requests finish first) and reports
    /// the components that ended with an error.
    pub async fn stop(self) -> Vec<(String, String)> {
        self.trigger.trigger();
        let mut failures = Vec::new();
        for (name, task) in self.tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push((name, e)),
                Err(e) => failures.push((name, e.to_string())),
            }
        }
        failures
    }
}

/// `GET /readyz` over a plain TCP connection: 200 means ready.
async fn readyz(addr: SocketAddr) -> bool {
    let Ok(Ok(mut s)) =
        tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await
    else {
        return false;
    };
    let req = format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await, Ok(Ok(n)) if n >= 12 && &buf[9..12] == b"200")
}
